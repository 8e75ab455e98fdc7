"""``btseg-bench``: accuracy, latency, memory and FLOPs of every artifact of model packages.

Examples::

    btseg-bench                                        # bundled default package + samples
    btseg-bench --model runs/demo/student --data phantom --out bench-out
    btseg-bench --model runs/demo/student --data phantom --compare-teachers --backends all
    btseg-bench --model runs/demo/student --backends openvino --precisions int8 --duration 10
    btseg-bench --model runs/demo/student --data phantom --min-dice 0.80   # exit 1 if any row is below
    btseg-bench --model runs/demo/student --batch 4 --streams 2   # + throughput rows (images/s)
    btseg-bench --budget-ms 15 runs/n/student runs/l/student   # most accurate artifact whose p90 fits

Exit codes: 0 done; 1 ``--min-dice`` gate failed (some ok row below it), or with
``--budget-ms`` no artifact fits; 2 bad input (one-line error).  Failed rows do not change the exit code: they are reported as rows.
"""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console

from btseg.cli.common import HELP, finite, handle_errors, requires_extra
from btseg.cli.tables import print_bench
from btseg.errors import ConfigError
from btseg.specs import BACKEND_SPECS, PRECISIONS

# the table goes to stdout; when piped, rich would squeeze it into 80 columns
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def _csv(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    if items == ["all"]:
        return list(allowed)
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise ConfigError(f"--{what} {value!r}: expected a comma list of {', '.join(allowed)} or all")
    return items


def _check_device(device: str) -> None:
    """Refuse a CUDA device this machine does not have before any row is loaded (every row
    would fail, and the run would look like a finished benchmark)."""
    if device.strip().lower().startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA device here (torch.cuda.is_available() is False); "
                              "use --device cpu or an OpenVINO device")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ConfigError(f"--device {device}: expected cuda or cuda:N with N < {torch.cuda.device_count()}")


@click.command(context_settings=HELP)
@click.option("--model", "models", multiple=True, type=click.Path(file_okay=False),
              help="Model package directory (repeatable). Default: the bundled package.")
@click.option("--backends", default="installed", show_default=True,
              help="Comma list of torch,onnxruntime,openvino,tensorrt; 'installed' (the ones importable "
                   "here) or 'all' (a missing one becomes a failed row).")
@click.option("--precisions", default="fp32,fp16,int8", show_default=True, help="Artifact precisions to include.")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="Data set root (BUSI/Dataset B/folder layout); its test split gives Dice etc.")
@click.option("--split", type=click.Choice(["test", "all"]), default="test", show_default=True,
              help="Test split (splits.json next to the packages, else make_splits seed 0) or all images.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Score only the first N test images.")
@click.option("--skip-bad", is_flag=True, help="Leave the --data set's bad items out (each named once, listed in "
              "the report's test-set source); default: refuse, naming every bad item.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], or an OpenVINO device (GPU, NPU).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads (default: usable cores).")
@click.option("--batch", type=click.IntRange(1), default=1, show_default=True,
              help="Also time segment_batch of N frames per call and report images/s (latency stays batch 1).")
@click.option("--streams", type=click.IntRange(1), default=1, show_default=True,
              help="Also time N requests in flight (OpenVINO THROUGHPUT + N async requests, ONNX Runtime N "
                   "sessions splitting --threads) and report images/s, as benchmark_app -api async.")
@click.option("--no-peak", is_flag=True, help="Skip the machine-peak GMAC/s probe (the '% peak' column).")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True)
@click.option("--iters", type=click.IntRange(1), default=None, help="Timed calls per row (default 50; not with --duration).")
@click.option("--duration", type=float, default=None,
              help="Seconds of timed calls per row (instead of --iters; not with it).")
@click.option("--sequential", is_flag=True,
              help="Time each row alone, one after another (default: a package's rows round-robin in blocks "
                   "of --block calls, so every row sees the same machine load).")
@click.option("--block", type=click.IntRange(2), default=5, show_default=True,
              help="Consecutive calls per row per round when interleaving (the first of each is untimed).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write bench.json, bench.csv, bench.md, bench.png here.")
@click.option("--compare-teachers", is_flag=True,
              help="Also bench sibling packages (teacher-benign, teacher-malignant, baseline-*).")
@click.option("--min-dice", type=float, default=None,
              help="Exit 1 if any ok row's Dice is below this (needs --data).")
@click.option("--no-memory", is_flag=True, help="Skip the per-row peak-memory subprocess.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON result to stdout instead of the table.")
@click.option("--budget-ms", type=float, default=None,
              help="Time the verified artifacts of the PACKAGES given as arguments and name the most accurate "
                   "(recorded validation lesion Dice) whose end-to-end p90 fits in this many ms; exit 1 if none.")
@click.argument("packages", nargs=-1, type=click.Path(file_okay=False))
@handle_errors
@requires_extra("btseg-bench", "train")
def main(models: tuple[str, ...], backends: str, precisions: str, data: str | None, split: str, limit: int | None,
         skip_bad: bool, device: str, threads: int | None, batch: int, streams: int, no_peak: bool, warmup: int,
         iters: int | None, duration: float | None, sequential: bool, block: int,
         out_dir: str | None, compare_teachers: bool, min_dice: float | None, no_memory: bool, as_json: bool,
         budget_ms: float | None, packages: tuple[str, ...]) -> None:
    """Benchmark every artifact of model packages: Dice, latency, memory, size, FLOPs."""
    from btseg.bench import report, runner

    if budget_ms is not None or packages:
        _budget(budget_ms, packages, models, backends, precisions, device, threads, warmup, iters, duration, block,
                as_json)
        return

    finite("--duration", duration, 0, 86400, low_open=True)  # nan/inf would never end
    finite("--min-dice", min_dice, 0, 1)  # nan would never fail the gate
    if min_dice is not None and data is None and models:
        raise ConfigError("--min-dice needs --data (there is no Dice without a test set)")
    if iters is not None and duration is not None:
        raise ConfigError(f"--iters {iters} and --duration {duration:g}: give one of them (a row is timed either "
                          "for N calls or for S seconds)")
    wanted = (runner.installed_backends() if backends.strip().lower() == "installed"
              else _csv(backends, runner.ALL_BACKENDS, "backends"))
    if backends.strip().lower() != "all":  # 'all' reports a missing backend as a failed row, by design
        missing = [b for b in wanted if b not in runner.installed_backends()]
        if missing:
            raise ConfigError(f"--backends {backends}: {', '.join(missing)} not installed here "
                              f"({'; '.join(BACKEND_SPECS[b].install_hint for b in missing)}); use --backends all "
                              "to list it as a failed row")
    _check_device(device)
    cfg = runner.BenchConfig(
        models=list(models), backends=wanted,
        precisions=_csv(precisions, PRECISIONS, "precisions"), data=data, split=split,
        device=device, threads=threads, batch=batch, streams=streams, peak=not no_peak, warmup=warmup,
        iters=iters if iters is not None or duration is not None else 50, duration=duration,
        memory=not no_memory, compare_teachers=compare_teachers, limit=limit, interleave=not sequential, block=block,
        skip_bad=skip_bad)

    def progress(row: dict) -> None:
        from rich.markup import escape

        err.print(f"[dim]{row['status']:>7}  {escape(row['model'])} {row['backend']} {row['target']}/{row['precision']}"
                  + (f": {escape(str(row['reason']))}" if row.get("reason") else "") + "[/]")

    result = runner.run(cfg, progress=progress)
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        print_bench(result, out)
    if out_dir:
        files = report.write_all(out_dir, result)
        err.print("wrote " + ", ".join(files.values()))
    if min_dice is not None:
        low = runner.below(result, min_dice)
        if low:
            for r in low:
                err.print(f"[red]below --min-dice {min_dice}[/]: {r['model']} {r['backend']} {r['precision']} "
                          f"Dice {r.get('dice')}")
            sys.exit(1)


def _budget(budget_ms: float | None, packages: tuple[str, ...], models: tuple[str, ...], backends: str,
            precisions: str, device: str, threads: int | None, warmup: int, iters: int | None, duration: float | None, block: int,
            as_json: bool) -> None:
    """``--budget-ms X PKG...``: exit 0 with the choice, 1 when nothing fits (reasons on stderr)."""
    from btseg.bench import budget, runner

    if budget_ms is None:
        raise ConfigError(f"package arguments {' '.join(packages)}: only with --budget-ms (else use --model)")
    finite("--budget-ms", budget_ms, 0, 1e7)
    pkgs = list(dict.fromkeys([*packages, *models]))
    if not pkgs:
        raise ConfigError("--budget-ms needs at least one package argument")
    chosen = (runner.installed_backends() if backends.strip().lower() == "installed"
              else _csv(backends, runner.ALL_BACKENDS, "backends"))
    # artifacts only: the torch row is the package's weights, not a deployable artifact
    cfg = runner.BenchConfig(models=pkgs, backends=[b for b in chosen if b != "torch"],
                             precisions=_csv(precisions, ("fp32", "fp16", "int8"), "precisions"), device=device,
                             threads=threads, peak=False, memory=False, warmup=warmup,
                             iters=iters if iters is not None or duration is not None else 50, duration=duration,
                             block=block)
    result = runner.run(cfg)
    decision = budget.choose(result["rows"], {p: budget.lesion_dice(p) for p in pkgs}, budget_ms)
    if as_json:
        click.echo(json.dumps(decision.to_dict(), indent=2))
    for what, why in decision.rejected:  # plain lines: one per artifact, never wrapped
        click.echo(f"rejected {what}: {why}", err=True)
    if decision.chosen is None:
        click.echo(f"no artifact of {len(pkgs)} package(s) fits p90 <= {budget_ms:g} ms", err=True)
        sys.exit(1)
    c = decision.chosen
    if not as_json:
        click.echo(f"chosen: {budget.label(c)}: p90 {budget.p90(c):.2f} ms <= {budget_ms:g} ms, "
                   f"validation lesion Dice {c['lesion_dice']:.4f}")


if __name__ == "__main__":
    main()
