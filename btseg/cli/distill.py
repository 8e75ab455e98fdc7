"""``btseg-distill``: train teachers and students, evaluate model packages.

Examples::

    btseg-distill all --data phantom/ --preset demo --out runs/demo
    btseg-distill student --data phantom/ --preset demo --out runs/demo --kd none --name student-nokd
    torchrun --nproc_per_node 2 --max-restarts 1 -m btseg.cli.distill all --data phantom/ --preset tiny --out runs/t
    btseg-distill eval runs/demo/student --data phantom/ --split test
    btseg-distill calibrate runs/demo/student --data site-validation-scans/ --dry-run
    btseg-distill cv --data phantom/ --preset demo --out runs/cv --folds 5 --variants dual,none --search kd
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from btseg.cli.common import HELP, console, handle_errors, refuse_given, requires_extra
from btseg.errors import ConfigError, DataError


_SKIP_BAD = click.option("--skip-bad", is_flag=True, help="Skip the data set's bad items (each named once, and "
                         "recorded in splits.json and model.json); default: refuse, naming every bad item.")


def _train_options(fn):
    opts = [
        click.option("--data", "data", required=True, help="Data set directory (BUSI, Dataset B or folder layout)."),
        click.option("--preset", default="demo", show_default=True, help="tiny | demo | paper."),
        click.option("--out", "out", required=True, help="Output directory (one package per model)."),
        click.option("--kd", default=None, help="none | response | feature | dual (student; default dual)."),
        click.option("--teachers", "teacher_mode", default=None,
                     help="routed | benign | malignant | mean (student; default routed)."),
        click.option("--epochs", type=int, default=None, help="Override the preset's epochs (the maximum: "
                     "training stops earlier on a validation-Dice plateau, see --patience)."),
        click.option("--patience", type=int, default=None, help="Early stopping: epochs without a validation-"
                     "Dice gain above --min-delta before training stops (default: the preset's)."),
        click.option("--min-delta", type=float, default=None, help="Smallest validation-Dice gain that counts "
                     "as progress for --patience (default 0)."),
        click.option("--batch-size", type=int, default=None, help="Global batch (all processes together; "
                     "under torchrun each takes batch-size / processes). Default: the preset's."),
        click.option("--seed", type=int, default=None, help="Seed of the split, init and augmentation."),
        click.option("--device", default=None, help="auto | cpu | cuda."),
        click.option("--resume", is_flag=True, help="Continue each model from its last checkpoint (OUT/<model>/train/state.safetensors)."),
        click.option("--teacher-dir", default=None, help="Where teacher-benign/ and teacher-malignant/ are "
                     "(default: --out)."),
        click.option("--name", default="student", show_default=True, help="Student package directory name."),
        click.option("--arch", default=None, help="Student architecture from the model registry "
                     "(e.g. unet, unext for a baseline trained with --kd none); default: the preset's."),
        click.option("--widths", default=None, help="Comma list of the student's widths, e.g. 8,16,64,80,128."),
        click.option("--scale", default=None, help="Student scale n | s | m | l (simplified_unet; l = the paper "
                     "student, 3.08 GMACs at 256 px; n <= 0.6). Not with --widths."),
        click.option("--alpha", type=float, default=None, help="Response-KD weight."),
        click.option("--beta", type=float, default=None, help="Feature-KD weight."),
        click.option("--temperature", type=float, default=None, help="Response-KD temperature."),
        click.option("--presence-weight", type=float, default=None, help="Weight of the image-level presence "
                     "term of every model's supervised loss (0 = off; default: the preset's)."),
        click.option("--normal-repeat", type=int, default=None, help="Show every normal training image this "
                     "many times per epoch (every model; default: the preset's)."),
        click.option("--presence-head", is_flag=True, default=None, help="Give the student an image-level "
                     "presence head on its bottleneck that gates its pixel logits (simplified_unet; measured, "
                     "not adopted: docs/distill.md)."),
        click.option("--presence-target", type=float, default=None, help="Share of validation lesion images "
                     "the 'no lesion' decision must still detect, calibrated after training (0 = no decision; "
                     "default 0.95)."),
        click.option("--threads", type=int, default=None, help="torch CPU threads (default: the preset's: 1 for demo, 'one per core' for tiny and paper)."),
        click.option("--no-progress", is_flag=True, help="No progress bar (logs still written)."),
        _SKIP_BAD,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _config(data: str, preset: str, kd, teacher_mode, epochs, seed, device, arch, widths, alpha, beta,
            temperature, threads, no_progress, batch_size=None, patience=None, min_delta=None, scale=None,
            presence_weight=None, presence_target=None, normal_repeat=None, presence_head=None):
    """The TrainConfig the shared training options ask for (one replace: re-validated)."""
    from btseg.distill.config import get_preset

    if not Path(data).is_dir():
        raise DataError(f"{data}: data directory not found")
    if arch is not None:
        from btseg.models import list_models

        if arch not in list_models():
            raise ConfigError(f"--arch {arch!r}: unknown model; known: {', '.join(list_models())}")
    base = get_preset(preset)
    student_kwargs = None
    if widths is not None:
        try:
            student_kwargs = {**base.student_kwargs, "widths": [int(w) for w in widths.split(",")]}
        except ValueError as e:
            raise ConfigError(f"--widths {widths!r}: expected a comma list of integers") from e
    if scale is not None:
        from btseg.contract import scale_widths

        if widths is not None:
            raise ConfigError(f"--scale {scale} and --widths {widths}: give one (a scale fixes the widths)")
        student_kwargs = {"widths": scale_widths(arch or base.student_arch, scale), "scale": scale}
    if presence_head:
        student_kwargs = {**(student_kwargs or base.student_kwargs), "presence_head": True}
    # one replace: the architecture and its widths are checked together against its contract
    return base.replace(kd=kd, teachers=teacher_mode, epochs=epochs, seed=seed, device=device,
                        batch_size=batch_size, alpha=alpha, beta=beta, temperature=temperature,
                        threads=threads, progress=False if no_progress else None, student_arch=arch,
                        student_kwargs=student_kwargs, patience=patience, min_delta=min_delta,
                        presence_weight=presence_weight, presence_target=presence_target,
                        normal_repeat=normal_repeat)


def _run(stage: str, data: str, preset: str, out: str, kd, teacher_mode, epochs, seed, device, resume,
         teacher_dir, name, arch, widths, alpha, beta, temperature, threads, no_progress, batch_size=None,
         patience=None, min_delta=None, skip_bad: bool = False, scale=None, presence_weight=None,
         presence_target=None, normal_repeat=None, presence_head=None) -> None:
    from btseg.distill.pipeline import run

    cfg = _config(data, preset, kd, teacher_mode, epochs, seed, device, arch, widths, alpha, beta, temperature,
                  threads, no_progress, batch_size, patience, min_delta, scale, presence_weight, presence_target,
                  normal_repeat, presence_head)
    progress = _RichProgress() if cfg.progress else None
    try:
        results = run(stage, data, out, cfg, resume=resume, teacher_dir=teacher_dir, name=name, progress=progress,
                      skip_bad=skip_bad)
    finally:
        if progress is not None:
            progress.close()
    if results:
        click.echo(json.dumps(results, indent=2))


class _RichProgress:
    """Rank 0's training events (:data:`btseg.distill.train.Progress`) as one rich bar per model."""

    def __init__(self) -> None:
        self.bar = None
        self.task = None

    def __call__(self, event: str, f: dict) -> None:
        if event == "start":
            self._start(f)
        elif event == "step" and self.bar is not None:
            self.bar.update(self.task, advance=1, loss=f["loss"], description=f"{f['name']} {f['epoch']}/{f['epochs']}")
        elif event == "epoch" and self.bar is not None:
            self.bar.update(self.task, dice=f"{f['row']['val_dice']:.4f} (best {f['best']:.4f})")
        elif event == "end":
            self.close()

    def _start(self, f: dict) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.close()
        resumed = f" (resumed after epoch {f['resumed_from']})" if f.get("resumed_from") is not None else ""
        console.print(f"{f['name']}: {f['world_size']} process(es) x {f['per_rank_batch']} = global batch "
                      f"{f['global_batch']}{resumed}")
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}  val dice {task.fields[dice]}"),
                            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
        self.bar.start()
        self.task = self.bar.add_task(f["name"], total=f["total"], completed=f["completed"], loss=float("nan"),
                                      dice="-")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


@click.group(context_settings=HELP)
@handle_errors
@requires_extra("btseg-distill", "train")
def main() -> None:
    """Train the benign/malignant teachers and distil them into the student (LightBTSeg)."""


# options that shape only the student: given to `teachers` they would be silently ignored
STUDENT_ONLY = ("kd", "teacher_mode", "teacher_dir", "name", "arch", "widths", "alpha", "beta", "temperature")


@main.command()
@_train_options
@handle_errors
def teachers(**kw) -> None:
    """Train OUT/teacher-benign and OUT/teacher-malignant."""
    refuse_given(STUDENT_ONLY, "they shape the student; `btseg-distill teachers` trains only the two teachers")
    _run("teachers", **kw)


@main.command()
@_train_options
@handle_errors
def student(**kw) -> None:
    """Train OUT/<name> from the teachers in --teacher-dir (or without KD: --kd none)."""
    _run("student", **kw)


@main.command(name="all")
@_train_options
@handle_errors
def all_(**kw) -> None:
    """Teachers, then the student."""
    _run("all", **kw)


@main.command(name="cv")
@_train_options
@click.option("--folds", type=click.IntRange(3), default=5, show_default=True, help="k of k-fold.")
@click.option("--variants", default="dual,none", show_default=True,
              help="Student variants trained in every fold: <kd>[-<teachers>], e.g. dual,none,dual-mean.")
@click.option("--search", type=click.Choice(["kd"]), default=None,
              help="kd: train every --kd-grid point per KD variant and fold, keep the best on validation.")
@click.option("--kd-grid", default=None, help="alpha:beta:T points for --search kd "
              "(default 0.5:0.5:2,1:1:2,0.5:0.5:4,1:1:4).")
@click.option("--only", default=None, help="Comma list of fold numbers to run now (the rest later, or by "
              "another process); the summary is written once every fold is done.")
@click.option("--resamples", type=click.IntRange(100), default=10_000, show_default=True,
              help="Bootstrap resamples of the paired intervals.")
@handle_errors
def cv(folds: int, variants: str, search: str | None, kd_grid: str | None, only: str | None, resamples: int,
       resume: bool, teacher_dir, name, kd, **kw) -> None:
    """k-fold cross-validation: teachers and students per fold, OUT/fold-K packages, a summary
    over every held-out image with paired bootstrap intervals (OUT/cv.json, OUT/cv.md).
    Always resumable: finished folds are skipped, an interrupted one continues."""
    from btseg.distill.cv import KD_GRID, parse_grid, parse_variants, run_cv

    if teacher_dir is not None or name != "student" or kd is not None or kw.get("teacher_mode") is not None:
        raise ConfigError("cv: --teacher-dir, --name, --kd and --teachers do not apply (teachers are trained per "
                          "fold; choose students with --variants, e.g. dual,none,dual-mean)")
    vs = parse_variants(variants)
    grid = (parse_grid(kd_grid) if kd_grid else KD_GRID) if search == "kd" else None
    if kd_grid and search != "kd":
        raise ConfigError("--kd-grid needs --search kd")
    try:
        folds_now = None if only is None else [int(x) for x in only.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"--only {only!r}: expected a comma list of fold numbers") from e
    out, skip_bad = kw.pop("out"), kw.pop("skip_bad")
    cfg = _config(kd=None, **kw)
    progress = _RichProgress() if cfg.progress else None
    try:
        summary = run_cv(kw["data"], out, cfg, folds=folds, variants=vs, grid=grid, only=folds_now,
                         progress=progress, n_resamples=resamples, skip_bad=skip_bad)
    finally:
        if progress is not None:
            progress.close()
    if "variants" in summary:
        _print_cv(summary)
        click.echo(json.dumps({k: summary[k] for k in ("folds", "n_images", "pairs", "search")}, indent=2))
    elif summary:
        click.echo(json.dumps(summary))


def _print_cv(summary: dict) -> None:
    from rich.table import Table

    def ms(b: dict) -> str:
        return "-" if b["mean"] != b["mean"] else f"{b['mean']:.3f} ± {b['std']:.3f}"

    table = Table(title=f"{summary['folds']}-fold CV, {summary['n_images']} held-out images")
    for col in ("variant", "group", "n", "Dice", "IoU", "normal false-lesion"):
        table.add_column(col, justify="left" if col in ("variant", "group") else "right")
    for v, groups in summary["variants"].items():
        for g, b in groups.items():
            if g != "per_fold_dice":
                fl = f"{b['false_lesion']['k']} of {b['false_lesion']['n']}" if "false_lesion" in b else ""
                table.add_row(v, g, str(b["n"]), ms(b["dice"]), ms(b["iou"]), fl)
    console.print(table)
    if summary["pairs"]:
        pt = Table(title="paired bootstrap by image (95% CI)")
        for col in ("pair", "metric", "n", "Δ", "95% CI"):
            pt.add_column(col, justify="left" if col in ("pair", "metric") else "right")
        for pair, block in summary["pairs"].items():
            for m, c in block.items():
                pt.add_row(pair, m, str(c["n"]), f"{c['delta']:+.4f}",
                           f"[{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}]")
        console.print(pt)


@main.command(name="eval")
@click.argument("package")
@click.option("--data", required=True, help="Data set directory.")
@click.option("--split", default="test", show_default=True, help="train | val | test | all.")
@click.option("--splits", "splits_file", default=None, help="splits.json (default: next to the package).")
@click.option("--no-distances", is_flag=True, help="Skip HD95/ASSD.")
@click.option("--device", default="cpu", show_default=True)
@_SKIP_BAD
@handle_errors
def eval_(package: str, data: str, split: str, splits_file: str | None, no_distances: bool, device: str,
          skip_bad: bool) -> None:
    """Dice / IoU / HD95 of PACKAGE, overall and per class: a table on stderr, JSON on stdout."""
    from btseg.distill.ddp import resolve_device
    from btseg.distill.evaluate import evaluate_package
    from btseg.package import load_package

    pkg = load_package(package)
    samples, _ = _select(package, data, split, splits_file, skip_bad)
    summary = evaluate_package(pkg, samples, distances=not no_distances, device=resolve_device(device))
    summary["split"] = split
    _print_table(summary)
    click.echo(json.dumps(summary, indent=2))


def _select(package: str, data: str, split: str, splits_file: str | None, skip_bad: bool):
    """``(samples, dataset)``: the images of ``data`` that ``split`` names (``all``, or a part
    of the package's split file), and the data set they came from (its skipped items)."""
    from btseg.data import Splits, open_dataset
    from btseg.data.splits import find_splits, splits_path

    if not Path(data).is_dir():
        raise DataError(f"{data}: data directory not found")
    dataset = open_dataset(data, include_normal=True, skip_bad=skip_bad, verify=True)
    if split == "all":
        return dataset, dataset
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split {split!r}: expected train, val, test or all")
    path = Path(splits_file) if splits_file else find_splits([Path(package).resolve()])
    if path is None or not path.exists():
        raise DataError(f"{path or splits_path(Path(package).resolve().parent)}: split file not found; "
                        "pass --splits or --split all")
    return Splits.load(path).select(dataset, split), dataset


@main.command(name="calibrate")
@click.argument("package")
@click.option("--data", required=True, help="Data set directory: images the package was NOT trained on.")
@click.option("--split", default="all", show_default=True,
              help="all (every image of --data: a site's own validation scans) | val | test (a part of "
                   "--splits). Never train: a threshold set on training images is too high.")
@click.option("--splits", "splits_file", default=None, help="splits.json (default: next to the package).")
@click.option("--target", type=float, default=0.95, show_default=True,
              help="Share of the lesion images the decision must still detect.")
@click.option("--dry-run", is_flag=True, help="Show the new decision; leave model.json as it is.")
@click.option("--device", default="cpu", show_default=True)
@_SKIP_BAD
@handle_errors
def calibrate_(package: str, data: str, split: str, splits_file: str | None, target: float, dry_run: bool,
               device: str, skip_bad: bool) -> None:
    """Calibrate PACKAGE's "no lesion" decision again on other scans (e.g. a site's own), and write it
    into model.json: the candidates on stderr, the new decision as JSON on stdout."""
    from btseg.distill.calibrate import recalibrate_package
    from btseg.distill.ddp import resolve_device

    if split == "train":
        raise ConfigError("--split train: the package learned those images; calibrate on images it has not seen")
    if not 0 < target < 1:
        raise ConfigError(f"--target {target!r}: expected a number in (0, 1)")
    samples, dataset = _select(package, data, split, splits_file, skip_bad)
    source = {"data": str(Path(data).resolve()), "split": split, "skipped": dataset.skipped_records()}
    done = recalibrate_package(package, samples, source, target, resolve_device(device), write=not dry_run)
    _print_calibration(package, done)
    click.echo(json.dumps(done, indent=2))


def _print_calibration(package: str, done: dict) -> None:
    from rich.table import Table

    new, old = done["presence"], done["previous"]
    table = Table(title=f"{package}: presence candidates on {new['calibration']['split']} "
                        f"(target {new['target_sensitivity']:g} of lesion images)")
    for col in ("score", "min area", "threshold", "lesions detected", "normals flagged"):
        table.add_column(col, justify="right")
    for r in new["calibration"]["candidates"]:
        chosen = r["reached"] and (r["score"], r["min_area_frac"], r["threshold"]) == \
            (new["score"], new["min_area_frac"], new["threshold"])
        cells = [r["score"], f"{r['min_area_frac']:g}", "-" if r["threshold"] is None else f"{r['threshold']:.4f}",
                 f"{r['detected']} of {r['n_lesion']}" if r["reached"] else "-",
                 f"{r['flagged']} of {r['n_normal']}" if r["reached"] else "-"]
        table.add_row(*cells, style="bold green" if chosen else None)
    console.print(table)
    before = "ungated" if old is None else f"{old['score']} >= {old['threshold']:.4f} (min area {old['min_area_frac']:g})"
    verb = "would be" if not done["written"] else "is now"
    console.print(f"decision was {before}; {verb} {new['score']} >= {new['threshold']:.4f} "
                  f"(min area {new['min_area_frac']:g})" + ("" if done["written"] else " (--dry-run: not written)"))


def _print_table(summary: dict) -> None:
    from rich.table import Table

    names = [m for m in ("dice", "iou", "hd95", "assd") if m in summary["overall"]]
    table = Table(title=f"{summary.get('package', 'model')} on {summary['split']} (n={summary['n']})")
    table.add_column("class")
    table.add_column("n", justify="right")
    for m in names:
        table.add_column(m, justify="right")
    rows = [("overall", summary["overall"]), *summary["per_class"].items()]
    for label, block in rows:
        cells = [f"{block[m]['mean']:.4f} ± {block[m]['std']:.4f}" for m in names]
        table.add_row(label, str(block["dice"]["n"]), *cells)
    console.print(table)


if __name__ == "__main__":
    main()
