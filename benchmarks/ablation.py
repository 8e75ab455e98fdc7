"""Does dual-teacher KD earn its place?  A multi-seed ablation on one synthetic data set.

One phantom data set, one duplicate-aware split (``btseg.data.make_splits``) and one pair
of teachers (seed fixed) are made once; then, for every seed (init + augmentation + data
order), the student with ``kd = none | response | feature | dual`` (teachers routed), with
dual KD from ``benign | malignant | mean`` teachers, and the U-Net and UNeXt-style
baselines, all by the one training loop (``btseg.distill.pipeline.run``), checkpoints
chosen on val, scored once on test with ``btseg.metrics``.

Resumable: each job writes ``WORK/results/<job>.json`` atomically when it is done, and a
re-run reuses it (a half-trained job resumes from its ``train/state.json``).  Jobs run
``--workers`` at a time in single-threaded processes, one progress bar each.

The converged version of this study (early stopping, 5-fold CV on the hard-normal phantom,
KD weights chosen on validation per fold) is :mod:`benchmarks.ablation_cv`, built on
``btseg-distill cv``.

    PYTHONPATH=. python benchmarks/ablation.py --work ablation-out      # the study
    PYTHONPATH=. python benchmarks/ablation.py --work ablation-out --report-only
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_report import document, score, write_report  # noqa: E402

from btseg.cli.common import console, handle_errors  # noqa: E402
from btseg.data.splits import splits_path  # noqa: E402
from btseg.errors import ConfigError  # noqa: E402
from btseg.io import read_json, write_json  # noqa: E402
from btseg.layout import is_package  # noqa: E402

# configuration -> (role, kd, teachers, arch); students use the preset's architecture
CONFIGS: dict[str, tuple[str, str, str | None, str | None]] = {
    "none": ("student", "none", None, None), "dual": ("student", "dual", "routed", None),
    "response": ("student", "response", "routed", None), "feature": ("student", "feature", "routed", None),
    "dual-benign": ("student", "dual", "benign", None), "dual-malignant": ("student", "dual", "malignant", None),
    "dual-mean": ("student", "dual", "mean", None),
    "unet": ("baseline", "none", None, "unet"), "unext": ("baseline", "none", None, "unext"),
}
# KD hyper-parameter sweep points (dual, routed): --sweep adds them, same seeds
SWEEP: dict[str, dict[str, float]] = {"dual@T1": {"temperature": 1.0}, "dual@T4": {"temperature": 4.0},
                                      "dual@a0.5b0.5": {"alpha": 0.5, "beta": 0.5}}


@dataclass
class Study:
    """Everything that fixes the study's results; saved as ``WORK/study.json``."""

    n: int = 300
    size: int = 128
    data_seed: int = 0
    split_seed: int = 0
    val: float = 0.15
    test: float = 0.2
    preset: str = "demo"
    epochs: int = 5
    teacher_epochs: int = 8
    steps_per_epoch: int = 12
    patience: int = 10
    teacher_widths: list[int] = field(default_factory=lambda: [8, 16, 32, 128, 256])
    teacher_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    configs: list[str] = field(default_factory=lambda: list(CONFIGS))
    threads: int = 1


def _base_cfg(st: Study):
    from btseg.distill.config import get_preset

    return get_preset(st.preset).replace(threads=st.threads, progress=False, device="cpu", val=st.val,
                                         test=st.test, patience=st.patience,
                                         max_steps_per_epoch=st.steps_per_epoch,
                                         teacher_kwargs={"widths": list(st.teacher_widths)})


# start order: the headline pair (no KD, dual) for every seed, then the baselines, then the
# other ablation rows; a study cut short keeps its most important comparisons complete
TIERS = (("none", "dual"), ("unet", "unext"))


def plan(st: Study) -> list[dict[str, Any]]:
    """Every job, in start order: teachers, then :data:`TIERS` seed by seed, then the rest."""
    from btseg.cli.demo_training import UNEXT_DEMO_WIDTHS
    from btseg.distill.config import get_preset

    base = _base_cfg(st)
    jobs = [{"name": f"teacher-{k}", "role": "teacher", "kd": None, "teachers": None, "arch": base.teacher_arch,
             "seed": st.teacher_seed, "stage": "teachers", "kinds": [k], "package": f"teacher-{k}", "needs": False,
             "cfg": base.replace(seed=st.teacher_seed, epochs=st.teacher_epochs).to_dict()}
            for k in ("benign", "malignant")]
    rest = tuple(c for c in st.configs if not any(c in t for t in TIERS))
    for tier in (*TIERS, rest):
        for seed in st.seeds:
            for conf in [c for c in tier if c in st.configs]:
                role, kd, teachers, arch = CONFIGS[conf.split("@")[0]]
                over: dict[str, Any] = {"seed": seed, "epochs": st.epochs, "kd": kd, "teachers": teachers or "routed"}
                if arch == "unet":  # make demo's U-Net baseline: the preset's (demo: 8..128) widths
                    over.update(student_arch="unet", student_kwargs=dict(get_preset(st.preset).teacher_kwargs))
                elif arch == "unext":
                    over.update(student_arch="unext", student_kwargs={"widths": list(UNEXT_DEMO_WIDTHS)})
                over.update(SWEEP.get(conf, {}))
                cfg = base.replace(**over)
                name = f"{'baseline' if role == 'baseline' else 'student'}-{conf}-s{seed}"
                jobs.append({"name": name, "role": role, "kd": kd, "teachers": teachers, "arch": cfg.student_arch,
                             "variant": conf[len(conf.split("@")[0]):], "seed": seed, "stage": "student",
                             "kinds": [], "package": name, "needs": kd != "none", "cfg": cfg.to_dict()})
    return jobs


def load_done(job: dict[str, Any], work: Path) -> dict[str, Any] | None:
    """The finished result of ``job`` under ``work``, or None; a result made with another
    configuration is a :class:`ConfigError` (never silently mixed into the study)."""
    path = work / "results" / f"{job['name']}.json"
    if not path.exists():
        return None
    rec = read_json(path)
    if rec.get("cfg") != job["cfg"]:
        raise ConfigError(f"{path}: made with another configuration than this study's; "
                          "use a new --work directory (or delete it to retrain)")
    return rec


def check_study(st: Study, work: Path) -> None:
    """Write ``WORK/study.json``, or check that an existing one matches ``st``."""
    path = work / "study.json"
    if path.exists():
        old = read_json(path)
        keep = {k: v for k, v in asdict(st).items() if k not in ("seeds", "configs")}
        diff = [k for k, v in keep.items() if old.get(k) != v]
        if diff:
            raise ConfigError(f"{path}: this work directory was made with other {', '.join(diff)}; "
                              "use a new --work directory")
    work.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(st))


def work_job(job: dict[str, Any], data: str, runs: str, result: str) -> dict[str, Any]:
    """Train (or resume) one job's model, score it on test, write its result (worker process)."""
    from btseg.distill.config import TrainConfig
    from btseg.distill.pipeline import run

    t0 = time.perf_counter()
    pkg = Path(runs) / job["package"]
    if not is_package(pkg):
        run(job["stage"], data, runs, TrainConfig.from_dict(job["cfg"]), resume=True, name=job["package"],
            teacher_kinds=tuple(job["kinds"]))
    rec = {k: job[k] for k in ("name", "role", "kd", "teachers", "arch", "variant", "seed", "cfg") if k in job}
    rec.update(score(pkg, Path(data), splits_path(runs)), job_seconds=round(time.perf_counter() - t0, 1))
    write_json(result, rec)
    return rec


def _session_clock(work: Path, jobs: int, workers: int):
    """Append this session to ``WORK/sessions.json``; the returned tick() rewrites its length,
    so a study killed mid-way still records how long it ran."""
    path = work / "sessions.json"
    sessions = read_json(path) if path.exists() else []
    me = {"start": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": 0.0, "jobs": jobs,
          "workers": workers}
    sessions.append(me)
    t0 = time.perf_counter()

    def tick() -> None:
        me["seconds"] = round(time.perf_counter() - t0, 1)
        write_json(path, sessions)

    tick()
    return tick


def run_jobs(jobs: list[dict[str, Any]], work: Path, workers: int, tick=lambda: None) -> None:
    """Run the jobs ``workers`` at a time; KD students start once both teachers are done."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    runs, results = work / "runs", work / "results"
    results.mkdir(parents=True, exist_ok=True)
    pending = list(jobs)
    teachers_left = {j["name"] for j in jobs if j["role"] == "teacher"}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool, \
            Progress(TextColumn("{task.description:<26}"), BarColumn(), TextColumn("{task.fields[status]}"),
                     TimeElapsedColumn(), console=console) as bars:
        ids = {j["name"]: bars.add_task(j["name"], total=j["cfg"]["epochs"], status="waiting") for j in jobs}
        running: dict[Any, dict] = {}
        while pending or running:
            for j in list(pending):
                if len(running) < workers and not (j["needs"] and teachers_left):
                    fut = pool.submit(work_job, j, str(work / "data"), str(runs), str(results / f"{j['name']}.json"))
                    running[fut] = j
                    pending.remove(j)
                    bars.update(ids[j["name"]], status="training")
                    _say(f"start {j['name']}", t0)
            done, _ = wait(list(running), timeout=5.0, return_when=FIRST_COMPLETED)
            tick()
            for j in running.values():
                _show_epoch(bars, ids[j["name"]], runs / j["package"] / "train" / "log.jsonl")
            for fut in done:
                j = running.pop(fut)
                rec = fut.result()  # a failed job stops the study with its own error; finished ones stay
                teachers_left.discard(j["name"])
                msg = f"done test Dice {rec['dice']:.4f} lesion {rec['dice_lesion']:.4f} ({rec['job_seconds']:.0f} s)"
                bars.update(ids[j["name"]], completed=j["cfg"]["epochs"], status=msg)
                _say(f"{j['name']}: {msg}", t0)


def _say(msg: str, t0: float) -> None:
    if not console.is_terminal:  # in the background (nohup, | tee): a line per event instead of bars
        console.print(f"[{(time.perf_counter() - t0) / 60:5.1f} min] {msg}")


def _show_epoch(bars, task, log: Path) -> None:
    try:
        rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    except (OSError, ValueError):
        return
    if rows:
        bars.update(task, completed=rows[-1]["epoch"],
                    status=f"loss {rows[-1].get('train_loss', float('nan')):.3f}  val Dice {rows[-1]['val_dice']:.3f}")


def prepare_data(st: Study, work: Path) -> None:
    """The phantom data set and the split, each made once."""
    from btseg.data import make_splits, open_dataset
    from btseg.data.phantom import ensure

    data = work / "data"
    if (s := ensure(data, st.n, st.size, st.data_seed, other="refuse")) is not None:
        console.print(f"data: {s['counts']} at {st.size} px in {s['seconds']:.1f} s -> {data}")
    split = splits_path(work / "runs")
    if not split.exists():
        split.parent.mkdir(parents=True, exist_ok=True)
        make_splits(open_dataset(data), val=st.val, test=st.test, seed=st.split_seed).save(split)


def command(st: Study, work: Path, out: Path, workers: int) -> str:
    """The command line that reproduces this study."""
    d = Study()
    args = ["PYTHONPATH=.", "python", "benchmarks/ablation.py", "--work", str(work), "--out", str(out)]
    if st.configs == [*d.configs, *SWEEP]:
        args.append("--sweep")
    for k, v in asdict(st).items():
        if v != getattr(d, k) and not (k == "configs" and "--sweep" in args):
            args += [f"--{k.replace('_', '-')}", ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return " ".join(shlex.quote(a) if a != "PYTHONPATH=." else a for a in args + ["--workers", str(workers)])


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"{s!r}: expected a comma list of integers") from e


@click.command()
@click.option("--work", type=click.Path(path_type=Path), default=Path("ablation-out"), show_default=True,
              help="Data, models and per-job results (resumable).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True)
@click.option("--n", type=click.IntRange(24), default=Study.n, show_default=True, help="Phantom images.")
@click.option("--size", type=click.IntRange(32), default=Study.size, show_default=True)
@click.option("--preset", default=Study.preset, show_default=True)
@click.option("--epochs", type=click.IntRange(1), default=Study.epochs, show_default=True)
@click.option("--teacher-epochs", type=click.IntRange(1), default=Study.teacher_epochs, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(0), default=Study.steps_per_epoch, show_default=True,
              help="Optimiser steps per epoch (0 = whole epoch).")
@click.option("--teacher-widths", default="8,16,32,128,256", show_default=True)
@click.option("--seeds", default="0,1,2", show_default=True, help="Student/baseline seeds.")
@click.option("--configs", default=",".join(CONFIGS), show_default=True)
@click.option("--sweep", is_flag=True, help=f"Add the KD sweep points {', '.join(SWEEP)}.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True)
@click.option("--resamples", type=click.IntRange(100), default=10_000, show_default=True)
@click.option("--report-only", is_flag=True, help="Only rewrite the report from finished results.")
@handle_errors
def main(work: Path, out: Path, n: int, size: int, preset: str, epochs: int, teacher_epochs: int,
         steps_per_epoch: int, teacher_widths: str, seeds: str, configs: str, sweep: bool, workers: int, resamples: int,
         report_only: bool) -> None:
    """Train and score every configuration of the KD ablation; write OUT/ablation.{json,md,png}."""
    confs = [c for c in configs.split(",") if c] + (list(SWEEP) if sweep else [])
    bad = [c for c in confs if c not in CONFIGS and c not in SWEEP]
    if bad:
        raise ConfigError(f"--configs {','.join(bad)}: unknown; known: {', '.join([*CONFIGS, *SWEEP])}")
    st = Study(n=n, size=size, preset=preset, epochs=epochs, teacher_epochs=teacher_epochs,
               steps_per_epoch=steps_per_epoch, teacher_widths=_ints(teacher_widths), seeds=_ints(seeds), configs=confs)
    check_study(st, work)
    jobs = plan(st)
    if not report_only:
        prepare_data(st, work)
        todo = [j for j in jobs if load_done(j, work) is None]
        console.print(f"ablation: {len(jobs) - len(todo)} of {len(jobs)} jobs already done; {len(todo)} to run")
        if todo:
            run_jobs(todo, work, workers, _session_clock(work, len(todo), workers))
    cmd = command(st, work, out, workers)
    recs = {j["name"]: load_done(j, work) for j in jobs}
    paths = write_report(document(asdict(st), recs, work, cmd, resamples), out)
    console.print(f"ablation: wrote {', '.join(map(str, paths))}\nreproduce: {cmd}")


if __name__ == "__main__":
    main()
