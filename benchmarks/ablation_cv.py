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

# the code that decides the study's numbers (btseg.provenance hashes it)
CODE_PATHS = ["btseg/distill", "btseg/models", "btseg/data/phantom.py", "btseg/data/phantom_normals.py",
              "btseg/data/splits.py", "btseg/metrics.py", "btseg/stats.py", "btseg/runtime/postprocess.py",
              "btseg/runtime/presence.py", "benchmarks/ablation_cv.py"]


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


def presence_posthoc(work: Path, st: CVStudy, records: list[dict]) -> dict[str, Any]:
    """The "no lesion" decision per fold, calibrated on that fold's validation images to detect
    95% of its lesion images (:func:`btseg.distill.calibrate.calibrate_model`, as training does
    since presence calibration landed), then applied to the held-out fold: per variant, lesion
    images detected and normal images flagged, k of n over every held-out image."""
    from btseg.data import Splits, open_dataset
    from btseg.data.splits import splits_path
    from btseg.distill.calibrate import calibrate_model
    from btseg.distill.evaluate import evaluate_package
    from btseg.package import load_package
    from btseg.runtime.postprocess import PostProcess

    dataset = open_dataset(work / "data", include_normal=True, cache=True)
    out: dict[str, Any] = {}
    for rec in records:
        fold_dir = work / "cv" / f"fold-{rec['fold']}"
        splits = Splits.load(splits_path(fold_dir))
        for v, vr in rec["variants"].items():
            pkg = load_package(fold_dir / vr["package"])
            model, spec, post = pkg.build_model(), pkg.config.preprocess, PostProcess.of(pkg.config)
            presence = calibrate_model(model, splits.select(dataset, "val"), spec, post, 0.95)
            gated = PostProcess(post.threshold, {**post.spec, "presence": presence}) if presence else post
            rows = evaluate_package(model, splits.select(dataset, "test"), distances=False, spec=spec, post=gated,
                                    per_image=True)["per_image"]
            acc = out.setdefault(v, {"lesion_detected": [0, 0], "normal_flagged": [0, 0], "per_fold": []})
            les = [r for r in rows if r["label"] != "normal"]
            nor = [r for r in rows if r["label"] == "normal"]
            acc["lesion_detected"][0] += sum(r["present"] for r in les)
            acc["lesion_detected"][1] += len(les)
            acc["normal_flagged"][0] += sum(r["present"] for r in nor)
            acc["normal_flagged"][1] += len(nor)
            acc["per_fold"].append({"fold": rec["fold"], "spec": {k: x for k, x in (presence or {}).items()
                                                                  if k != "calibration"}})
    return out


def report(st: CVStudy, summary: dict[str, Any], facts: list[dict], presence: dict[str, Any], cmd: str,
           out: Path, code_note: str) -> list[Path]:
    """Write ``ablation-cv.json`` and ``ablation-cv.md`` under ``out``."""
    from btseg.distill.cv import markdown
    from btseg.provenance import stamp

    stopped = [f for f in facts if f["stopped_early"]]
    secs = sum(f["seconds"] or 0 for f in facts)
    doc = {"provenance": stamp(cmd, CODE_PATHS), "code_note": code_note, "study": asdict(st), "command": cmd,
           "summary": summary, "presence": presence, "training": facts}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ablation-cv.json", doc)
    head = [f"# KD ablation, {st.folds}-fold CV on the {'hard-normal ' if st.hard_normals else ''}phantom "
            f"({st.n} images at {st.size} px)", "",
            f"Reproduce: `{cmd}`", "",
            f"Schedule: every model until its validation Dice stops improving for {st.patience} epochs "
            f"(at most {st.max_epochs} epochs of {st.steps_per_epoch} steps, batch {st.batch_size}); "
            f"{len(stopped)} of {len(facts)} models stopped on the plateau, the others ran the {st.max_epochs}-epoch "
            f"bound. Teachers: attention_unet widths {st.teacher_widths}; students: simplified_unet "
            f"widths {st.student_widths}. KD weights chosen per fold on validation among {st.kd_grid} "
            f"(alpha:beta:T). Sum of the models' training wall times: {secs / 60:.1f} min (1 thread each, "
            "several at a time on a shared 2-core machine).", ""] + ([code_note, ""] if code_note else [])
    body = "\n" + markdown(summary).split("\n", 2)[2]  # drop its title: ours says more
    if presence:
        body += ("\nWith the \"no lesion\" decision calibrated per fold on validation (target: 95% of validation "
                 "lesion images detected), applied to the held-out images:\n\n| variant | lesion images detected | "
                 "normal images flagged |\n|---|---|---|\n" + "".join(
                     f"| {v} | {p['lesion_detected'][0]} of {p['lesion_detected'][1]} | "
                     f"{p['normal_flagged'][0]} of {p['normal_flagged'][1]} |\n" for v, p in presence.items()))
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
@click.option("--report-only", is_flag=True, help="Only summarise the finished folds of --work and write the report.")
@click.option("--code-note", default="", help="A sentence for the report on the code the models were trained with.")
@handle_errors
def main(work: Path, out: Path, n: int, size: int, hard_normals: bool, folds: int, max_epochs: int, patience: int,
         steps_per_epoch: int, batch_size: int, teacher_widths: str, student_widths: str, variants: str,
         kd_grid: str, only: str | None, report_only: bool, code_note: str) -> None:
    """Run (or resume) the CV ablation; write the report once every fold is done."""
    from btseg.data.phantom import ensure
    from btseg.distill.cv import parse_grid, parse_variants, run_cv

    st = CVStudy(n=n, size=size, hard_normals=hard_normals, folds=folds, max_epochs=max_epochs, patience=patience,
                 steps_per_epoch=steps_per_epoch, batch_size=batch_size, teacher_widths=_ints(teacher_widths),
                 student_widths=_ints(student_widths), variants=variants, kd_grid=kd_grid)
    path = work / "study.json"
    if report_only:
        return _report_only(work, out, st, code_note)
    if path.exists():
        _same_study(CVStudy(**read_json(path)), st, path)
    work.mkdir(parents=True, exist_ok=True)
    write_json(path, asdict(st))
    data = work / "data"
    ensure(data, st.n, st.size, st.data_seed, workers=1, hard_normals=st.hard_normals, other="refuse")
    t0 = time.perf_counter()
    summary = run_cv(data, work / "cv", config(st), folds=st.folds, variants=parse_variants(st.variants),
                     grid=parse_grid(st.kd_grid), only=None if only is None else _ints(only))
    console.print(f"ablation-cv: {time.perf_counter() - t0:.0f} s this session")
    if "variants" not in summary:
        console.print(f"ablation-cv: folds done {summary.get('folds_done')}; rerun when all are done for the report")
        return
    _report_only(work, out, st, code_note)


def _same_study(old: CVStudy, new: CVStudy, path: Path) -> None:
    """The same study, or the same one with variants added (``btseg.distill.cv`` extends it)."""
    names = lambda st: [v.strip() for v in st.variants.split(",")]  # noqa: E731
    if {**asdict(old), "variants": ""} != {**asdict(new), "variants": ""} or not set(names(old)) <= set(names(new)):
        raise ConfigError(f"{path}: made with another study configuration; use a new --work (adding variants is allowed)")


def _report_only(work: Path, out: Path, st: CVStudy, code_note: str) -> None:
    """Summarise the folds ``--work`` holds (the study it was made with) and write the report."""
    from btseg.distill.cv import summarise

    made = CVStudy(**read_json(work / "study.json"))
    _same_study(made, st, work / "study.json")
    if made.variants != st.variants:
        raise ConfigError(f"{work / 'study.json'}: made with --variants {made.variants}; pass those")
    missing = [k for k in range(st.folds) if not (work / "cv" / f"fold-{k}" / "fold.json").exists()]
    if missing:
        raise ConfigError(f"{work}: folds {missing} are not finished; run the study first")
    records = [read_json(work / "cv" / f"fold-{k}" / "fold.json") for k in range(st.folds)]
    names = [v.strip() for v in st.variants.split(",")]
    summary = summarise(records, sorted(names, key=lambda v: v == "none"))  # "<kd> - none": the KD effect
    paths = report(st, summary, _training_facts(work, st), presence_posthoc(work, st, records),
                   command(st, work, out), out, code_note)
    console.print(f"ablation-cv: wrote {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
