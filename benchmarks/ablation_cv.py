"""Does dual-teacher KD earn its place?  k-fold CV on the hard-normal phantom, converged schedules.

The protocol is ``btseg-distill cv`` (:func:`btseg.distill.cv.run_cv`), nothing else: one
phantom data set with lesion look-alikes on its normal images (``hard_normals``), k folds
(stratified, near-duplicates together), per fold two teachers and the student variants,
every model trained until its validation Dice plateaus (``patience``; ``max_epochs`` is only
a bound), KD weights chosen per fold on validation among ``--kd-grid`` (``--search kd``),
every image scored once by the fold that held it out, paired bootstrap by image.

Resumable (finished folds are kept); ``--only`` lets two processes share the folds::

    PYTHONPATH=. nice -n 15 python benchmarks/ablation_cv.py --work ablation-cv-out --only 0,2,4 &
    PYTHONPATH=. nice -n 15 python benchmarks/ablation_cv.py --work ablation-cv-out --only 1,3
    PYTHONPATH=. python benchmarks/ablation_cv.py --work ablation-cv-out     # summary + report

Writes ``OUT/ablation-cv.json`` (study, command, summary, per-fold training facts) and
``OUT/ablation-cv.md``.
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from btseg.cli.common import console, handle_errors  # noqa: E402
from btseg.errors import ConfigError  # noqa: E402
from btseg.io import atomic_write, read_json, write_json  # noqa: E402


@dataclass
class CVStudy:
    """Everything that fixes the study's results (saved as ``WORK/study.json``)."""

    n: int = 150
    size: int = 64
    data_seed: int = 0
    hard_normals: bool = True
    folds: int = 5
    preset: str = "demo"
    max_epochs: int = 30
    patience: int = 5
    steps_per_epoch: int = 8
    batch_size: int = 8
    teacher_widths: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    student_widths: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    variants: str = "none,dual"
    kd_grid: str = "1:1:2,0.5:0.5:2,0.5:0.5:4"
    seed: int = 0


def config(st: CVStudy):
    """The TrainConfig every model of the study starts from."""
    from btseg.distill.config import get_preset

    return get_preset(st.preset).replace(
        image_size=st.size, epochs=st.max_epochs, patience=st.patience, max_steps_per_epoch=st.steps_per_epoch,
        batch_size=st.batch_size, min_epoch_samples=0, teacher_kwargs={"widths": list(st.teacher_widths)},
        student_kwargs={"widths": list(st.student_widths)}, seed=st.seed, threads=1, device="cpu", progress=False)


def _ints(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"{s!r}: expected a comma list of integers") from e


def _training_facts(work: Path, st: CVStudy) -> list[dict[str, Any]]:
    """Per fold and model: epochs run, best epoch, early stop, seconds (from model.json)."""
    from btseg.package import load_package

    out = []
    for k in range(st.folds):
        for pkg_dir in sorted((work / "cv" / f"fold-{k}").glob("*/model.json")):
            t = load_package(pkg_dir.parent).config.training or {}
            out.append({"fold": k, "model": pkg_dir.parent.name, "epochs_run": t.get("epochs_run"),
                        "best_epoch": t.get("best_epoch"), "stopped_early": t.get("stopped_early"),
                        "seconds": t.get("seconds"), "params": t.get("params")})
    return out


def report(st: CVStudy, summary: dict[str, Any], facts: list[dict], cmd: str, out: Path) -> list[Path]:
    """Write ``ablation-cv.json`` and ``ablation-cv.md`` under ``out``."""
    from btseg.distill.cv import markdown

    stopped = [f for f in facts if f["stopped_early"]]
    secs = sum(f["seconds"] or 0 for f in facts)
    doc = {"study": asdict(st), "command": cmd, "summary": summary, "training": facts}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ablation-cv.json", doc)
    head = [f"# KD ablation, {st.folds}-fold CV on the {'hard-normal ' if st.hard_normals else ''}phantom "
            f"({st.n} images at {st.size} px)", "",
            f"Reproduce: `{cmd}`", "",
            f"Schedule: every model until its validation Dice stops improving for {st.patience} epochs "
            f"(at most {st.max_epochs} epochs of {st.steps_per_epoch} steps, batch {st.batch_size}); "
            f"{len(stopped)} of {len(facts)} models stopped on the plateau, the others ran the {st.max_epochs}-epoch "
            f"bound. Teachers: attention_unet widths {st.teacher_widths}; students: the preset's student "
            f"widths {st.student_widths}. KD weights chosen per fold on validation among {st.kd_grid} "
            f"(alpha:beta:T). Training CPU time over all models: {secs / 60:.1f} min (1 thread each, shared 2-core "
            "machine).", ""]
    body = markdown(summary).split("\n", 2)[2]  # drop its title: ours says more
    with atomic_write(out / "ablation-cv.md") as f:
        f.write("\n".join(head) + body)
    return [out / "ablation-cv.json", out / "ablation-cv.md"]


def command(st: CVStudy, work: Path, out: Path) -> str:
    d = CVStudy()
    args = ["PYTHONPATH=.", "python", "benchmarks/ablation_cv.py", "--work", str(work), "--out", str(out)]
    for k, v in asdict(st).items():
        if v != getattr(d, k):
            flag = f"--{k.replace('_', '-')}"
            if isinstance(v, bool):
                args.append(flag if v else f"--no-{k.replace('_', '-')}")
            else:
                args += [flag, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    return " ".join(a if a == "PYTHONPATH=." else shlex.quote(a) for a in args)


@click.command()
@click.option("--work", type=click.Path(path_type=Path), default=Path("ablation-cv-out"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True)
@click.option("--n", type=click.IntRange(24), default=CVStudy.n, show_default=True)
@click.option("--size", type=click.IntRange(32), default=CVStudy.size, show_default=True)
@click.option("--hard-normals/--no-hard-normals", default=True, show_default=True)
@click.option("--folds", type=click.IntRange(2), default=CVStudy.folds, show_default=True)
@click.option("--max-epochs", type=click.IntRange(1), default=CVStudy.max_epochs, show_default=True)
@click.option("--patience", type=click.IntRange(1), default=CVStudy.patience, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(0), default=CVStudy.steps_per_epoch, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=CVStudy.batch_size, show_default=True)
@click.option("--teacher-widths", default="8,16,32,64,128", show_default=True)
@click.option("--student-widths", default="8,16,32,64,128", show_default=True)
@click.option("--variants", default=CVStudy.variants, show_default=True)
@click.option("--kd-grid", default=CVStudy.kd_grid, show_default=True)
@click.option("--only", default=None, help="Folds to run in this process (comma list).")
@handle_errors
def main(work: Path, out: Path, n: int, size: int, hard_normals: bool, folds: int, max_epochs: int, patience: int,
         steps_per_epoch: int, batch_size: int, teacher_widths: str, student_widths: str, variants: str,
         kd_grid: str, only: str | None) -> None:
    """Run (or resume) the CV ablation; write the report once every fold is done."""
    from btseg.data.phantom import synthesize
    from btseg.distill.cv import parse_grid, parse_variants, run_cv

    st = CVStudy(n=n, size=size, hard_normals=hard_normals, folds=folds, max_epochs=max_epochs, patience=patience,
                 steps_per_epoch=steps_per_epoch, batch_size=batch_size, teacher_widths=_ints(teacher_widths),
                 student_widths=_ints(student_widths), variants=variants, kd_grid=kd_grid)
    path = work / "study.json"
    if path.exists() and read_json(path) != asdict(st):
        raise ConfigError(f"{path}: made with another study configuration; use a new --work")
    work.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(st))
    data = work / "data"
    if not (data / "phantom.json").exists():
        synthesize(data, n=st.n, size=st.size, seed=st.data_seed, workers=1, hard_normals=st.hard_normals)
    t0 = time.perf_counter()
    summary = run_cv(data, work / "cv", config(st), folds=st.folds, variants=parse_variants(st.variants),
                     grid=parse_grid(st.kd_grid), only=None if only is None else _ints(only))
    console.print(f"ablation-cv: {time.perf_counter() - t0:.0f} s this session")
    if "variants" not in summary:
        console.print(f"ablation-cv: folds done {summary.get('folds_done')}; rerun when all are done for the report")
        return
    paths = report(st, summary, _training_facts(work, st), command(st, work, out), out)
    console.print(f"ablation-cv: wrote {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
