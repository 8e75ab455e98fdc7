"""The demo's training step: every model of the run, two single-threaded processes at a time.

Part of :mod:`btseg.cli.demo` (``make demo``); see there for the whole flow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from btseg.layout import config_path, is_package

console = Console(stderr=True)
MODELS = ("teacher-benign", "teacher-malignant", "student", "student-nokd", "baseline-unet", "baseline-unext")
# the UNeXt-style baseline at half the paper's widths, as the teachers are width-scaled too
UNEXT_DEMO_WIDTHS = [8, 16, 64, 80, 128]


def _train_job(stage: str, data: str, run: str, cfg: dict[str, Any], name: str, kinds: tuple[str, ...]) -> None:
    """One model in a worker process (module level so that it pickles)."""
    from btseg.distill.config import TrainConfig
    from btseg.distill.pipeline import run as distill

    distill(stage, data, run, TrainConfig.from_dict(cfg), name=name, teacher_kinds=kinds)


def train(data: Path, run: Path, preset: str, seed: int, fresh: bool, workers: int = 2,
          only: tuple[str, ...] = MODELS) -> dict[str, Any]:
    """Teachers, the student with dual KD, and three references without KD (the same student,
    a plain U-Net the size of a teacher, a UNeXt-style net), trained ``workers`` at a time.

    Small models use two cores better as two single-threaded processes than as one process
    with two threads, so independent models train side by side; the students wait for both
    teachers.  The workers print nothing; this process shows one bar per model from the
    ``train/log.jsonl`` each one rewrites every epoch.
    """
    from btseg.data import make_splits, open_dataset
    from btseg.distill.config import get_preset
    from btseg.data.splits import splits_path

    cfg = get_preset(preset).replace(seed=seed, progress=False, threads=1)
    student = cfg.replace(kd="dual", teachers="routed")
    jobs = {  # name -> (stage, config, student dir name, teacher kinds, needs the teachers)
        "teacher-benign": ("teachers", cfg, "student", ("benign",), False),
        "teacher-malignant": ("teachers", cfg, "student", ("malignant",), False),
        "baseline-unet": ("student", cfg.replace(kd="none", student_arch="unet", student_kwargs=cfg.teacher_kwargs),
                          "baseline-unet", (), False),
        "baseline-unext": ("student", cfg.replace(kd="none", student_arch="unext",
                                                  student_kwargs={"widths": UNEXT_DEMO_WIDTHS}),
                           "baseline-unext", (), False),
        "student": ("student", student, "student", (), True),
        "student-nokd": ("student", cfg.replace(kd="none"), "student-nokd", (), False),
    }
    jobs = {m: j for m, j in jobs.items() if m in only}
    todo = {m: j for m, j in jobs.items() if fresh or not is_package(run / m)}
    for m in sorted(set(jobs) - set(todo)):
        console.print(f"train: reusing {m}")
    if todo:
        run.mkdir(parents=True, exist_ok=True)
        if fresh or not splits_path(run).exists():  # once, before the workers race for it
            make_splits(open_dataset(data), val=cfg.val, test=cfg.test, seed=seed).save(splits_path(run))
        _run_jobs(todo, data, run, workers)
    return {m: read_model(run / m) for m in MODELS if is_package(run / m)}


def _run_jobs(todo: dict[str, tuple], data: Path, run: Path, workers: int) -> None:
    import json
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # critical path first: teachers, then the KD student as soon as both exist, then the rest;
    # a job is handed to the pool only when a worker is free, so nothing queues ahead of it
    pending = [m for m in MODELS if m in todo]
    teachers_left = {m for m in todo if m.startswith("teacher-")}
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool, \
            Progress(TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.fields[status]}"),
                     TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        bars = {m: progress.add_task(m, total=j[1].epochs, status="waiting") for m, j in todo.items()}
        running: dict[Any, str] = {}
        while pending or running:
            for m in list(pending):
                if len(running) < workers and not (todo[m][4] and teachers_left):
                    stage, c, name, kinds, _ = todo[m]
                    running[pool.submit(_train_job, stage, str(data), str(run), c.to_dict(), name, kinds)] = m
                    progress.update(bars[m], status="training")
                    pending.remove(m)
            done, _ = wait(list(running), timeout=2.0, return_when=FIRST_COMPLETED)
            for m in running.values():
                log = run / m / "train" / "log.jsonl"
                if log.exists():
                    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
                    if rows:
                        progress.update(bars[m], completed=rows[-1]["epoch"],
                                        status=f"loss {rows[-1]['train_loss']:.3f}  val Dice {rows[-1]['val_dice']:.3f}")
            for fut in done:
                m = running.pop(fut)
                fut.result()  # a failed model stops the demo with its own error
                teachers_left.discard(m)
                progress.update(bars[m], completed=todo[m][1].epochs, status=f"done ({read_dice(run / m)})")
                if not console.is_terminal:  # piped (make demo | tee): no live bars, so a line per model
                    console.print(f"train: {m} done ({read_dice(run / m)})")


def read_dice(pkg_dir: Path) -> str:
    from btseg.io import read_json

    d = read_json(config_path(pkg_dir)).get("metrics", {}).get("test", {}).get("overall", {}).get("dice", {})
    return f"test Dice {d.get('mean', float('nan')):.3f}"


def read_model(pkg_dir: Path) -> dict[str, Any]:
    from btseg.bench.flops import count_macs
    from btseg.cli.demo_report import lesion_columns, presence_columns
    from btseg.package import load_package

    pkg = load_package(pkg_dir)
    model = pkg.build_model()
    test = pkg.config.metrics.get("test", {})
    per = test.get("per_class", {})
    dice_lesion, _ = lesion_columns(test)
    return {"role": pkg.config.role, "kd": pkg.config.training.get("kd"),
            "dice": test.get("overall", {}).get("dice", {}).get("mean"),
            "dice_lesion": dice_lesion, **presence_columns(test),
            "iou": test.get("overall", {}).get("iou", {}).get("mean"),
            "hd95": test.get("overall", {}).get("hd95", {}).get("mean"),
            "dice_benign": per.get("benign", {}).get("dice", {}).get("mean"),
            "dice_malignant": per.get("malignant", {}).get("dice", {}).get("mean"),
            "params": sum(p.numel() for p in model.parameters()),
            "gmacs": count_macs(model, pkg.config.input_size) / 1e9,
            "train_seconds": pkg.config.training.get("seconds")}


def count_held_out_normals(models: dict[str, dict[str, Any]], run: Path, normals: Path) -> None:
    """Add ``heldout_flagged`` / ``heldout_n`` to every model: the held-out normal phantoms
    (``OUT/normals``, in no split) on which its package, presence decision included, draws a
    lesion.  A test split holds few normal images (8 of 45 in the demo); this counts many.
    ``heldout_flagged_ungated``: the same count without the decision, what it fixed."""
    from btseg.data import open_dataset
    from btseg.distill.evaluate import evaluate_package
    from btseg.package import load_package
    from btseg.runtime.postprocess import PostProcess

    samples = open_dataset(normals)
    for name, m in models.items():
        nor = evaluate_package(run / name, samples, distances=False)["presence"]["normal"]
        raw = evaluate_package(run / name, samples, distances=False,
                               post=PostProcess.of(load_package(run / name).config).ungated())["presence"]["normal"]
        m["heldout_flagged"], m["heldout_n"], m["heldout_flagged_ungated"] = nor["flagged"], nor["n"], raw["flagged"]


def training_rows(models: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the training table (terminal, Markdown and HTML)."""
    cols = ["model", "KD", "Dice", "lesion Dice", "lesion sensitivity", "normal false-lesion rate (k of n)",
            "held-out normals flagged (k of n; without the decision)",
            "Dice benign", "Dice malignant", "IoU", "HD95 px", "params", "GMACs", "train s"]
    f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    rows = [[name, str(m["kd"]), f(m["dice"], ".4f"), f(m.get("dice_lesion"), ".4f"), _sensitivity(m), _flagged(m),
             _held_out(m),
             f(m["dice_benign"], ".4f"), f(m["dice_malignant"], ".4f"),
             f(m["iou"], ".4f"), f(m["hd95"], ".2f"), f"{m['params'] / 1e6:.3f} M", f(m["gmacs"], ".3f"),
             f(m["train_seconds"], ".0f")] for name, m in models.items()]
    return cols, rows


def _sensitivity(m: dict[str, Any]) -> str:
    """``0.950 (19 of 20)``: lesion test images the presence decision detects."""
    if m.get("lesion_sensitivity") is None:
        return "-"
    return f"{m['lesion_sensitivity']:.3f} ({m['lesion_detected']} of {m['lesion_n']})"


def _held_out(m: dict[str, Any]) -> str:
    """``1 of 100 (7)``: held-out normals flagged with the decision (without it)."""
    if not m.get("heldout_n"):
        return "-"
    raw = m.get("heldout_flagged_ungated")
    return f"{m['heldout_flagged']} of {m['heldout_n']}" + ("" if raw is None else f" ({raw})")


def _flagged(m: dict[str, Any]) -> str:
    """``1 of 8``: normal test images with a lesion drawn (a count, not a rounded rate)."""
    return f"{m['normal_flagged']} of {m['normal_n']}" if m.get("normal_n") else "-"


def training_table(models: dict[str, dict[str, Any]]) -> tuple[Table, str]:
    """The training table as a rich Table and as Markdown."""
    cols, rows = training_rows(models)
    t = Table(title="test split (synthetic phantoms)")
    for c in cols:
        t.add_column(c, justify="left" if c in ("model", "KD") else "right")
    for row in rows:
        t.add_row(*row)
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)] + ["| " + " | ".join(r) + " |" for r in rows]
    return t, "\n".join(md)
