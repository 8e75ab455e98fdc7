"""k-fold cross-validation of teachers and student variants: one package per fold and model.

Layout of an output directory::

    OUT/cv-plan.json              what this directory is for (config, folds, variants, grid)
    OUT/kfold.json                the folds (btseg.data.kfold: stratified, duplicates together)
    OUT/fold-K/splits.json        fold K: test = fold K, val = fold K+1 (mod k), train = the rest
    OUT/fold-K/teacher-benign/    packages, trained by btseg.distill.pipeline, as ``all`` would
    OUT/fold-K/student-<variant>/ (with --search kd: one per grid point, the chosen one named)
    OUT/fold-K/fold.json          the commit point of fold K: held-out per-image rows per variant
    OUT/cv.json, OUT/cv.md        the summary over every held-out image (:func:`summarise`)

Each image is held out (scored) exactly once, by the models of the fold that did not train or
select on it.  Model selection (best epoch, KD weights of ``--search kd``) uses the fold's
validation part only, never its test part.

Resumable per fold: a fold with ``fold.json`` is skipped on a rerun; an interrupted fold
resumes, its finished packages reused and the others continuing from their checkpoints
(:func:`btseg.distill.pipeline.train_student` with ``resume``).  ``cv-plan.json`` refuses a
rerun with another configuration into the same directory, so nothing is silently mixed;
adding variants (``--variants dual,none`` then ``dual,none,dual-mean``) extends the study:
finished folds train only the new variants.
Runs under ``torchrun`` like ``all``: one process group for every fold.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from btseg.data import Dataset, KFold, Splits, kfold, open_dataset
from btseg.data.splits import splits_path
from btseg.distill import ddp, pipeline
from btseg.distill.config import KD_MODES, TEACHER_MODES, TrainConfig
from btseg.distill.evaluate import evaluate_package
from btseg.distill.train import Progress
from btseg.errors import ConfigError
from btseg.io import atomic_write, read_json, write_json
from btseg.metrics import reduce
from btseg.stats import paired_bootstrap

PLAN_FILE, KFOLD_FILE, FOLD_FILE, SUMMARY_FILE = "cv-plan.json", "kfold.json", "fold.json", "cv.json"
# --search kd: (alpha, beta, temperature) grid points; an exact tie in validation Dice goes to the
# earlier point (the order predates the default becoming (1, 1, 2); see the ablation in docs/distill.md)
KD_GRID: tuple[tuple[float, float, float], ...] = ((0.5, 0.5, 2.0), (1.0, 1.0, 2.0), (0.5, 0.5, 4.0),
                                                    (1.0, 1.0, 4.0))
LESION = ("benign", "malignant")


@dataclass(frozen=True)
class Variant:
    """One student configuration: a KD mode and (for KD) the teacher routing."""

    kd: str
    teachers: str = "routed"

    @property
    def name(self) -> str:
        return self.kd if self.kd == "none" or self.teachers == "routed" else f"{self.kd}-{self.teachers}"


def parse_variants(text: str) -> tuple[Variant, ...]:
    """``"dual,none,dual-mean"`` -> variants; :class:`ConfigError` naming a bad one."""
    out: list[Variant] = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        kd, _, teachers = item.partition("-")
        if kd not in KD_MODES or (teachers and (teachers not in TEACHER_MODES or kd == "none")):
            raise ConfigError(f"variant {item!r}: expected <kd>[-<teachers>] with kd in {', '.join(KD_MODES)} "
                              f"and teachers in {', '.join(TEACHER_MODES)} (e.g. dual, none, dual-mean)")
        out.append(Variant(kd, teachers or "routed"))
    if not out or len({v.name for v in out}) != len(out):
        raise ConfigError(f"--variants {text!r}: expected distinct variants, e.g. dual,none")
    return tuple(out)


def parse_grid(text: str) -> tuple[tuple[float, float, float], ...]:
    """``"1:1:2,0.5:0.5:4"`` -> ((alpha, beta, T), ...)."""
    try:
        grid = tuple(tuple(float(v) for v in p.split(":")) for p in text.split(",") if p.strip())
    except ValueError as e:
        raise ConfigError(f"--kd-grid {text!r}: expected alpha:beta:T points separated by commas") from e
    if not grid or any(len(p) != 3 for p in grid):
        raise ConfigError(f"--kd-grid {text!r}: expected alpha:beta:T points separated by commas")
    return grid  # type: ignore[return-value]


def fold_splits(kf: KFold, i: int) -> Splits:
    """Fold ``i`` as a hold-out split: test = fold i, val = fold i+1 (mod k), train = the rest."""
    k = len(kf.folds)
    val = (i + 1) % k
    train = sorted(x for j, f in enumerate(kf.folds) if j not in (i, val) for x in f)
    return Splits(train=train, val=list(kf.folds[val]), test=list(kf.folds[i]), seed=kf.seed,
                  fractions={"val": 1 / k, "test": 1 / k, "fold": i, "folds": k},
                  duplicates=kf.duplicates, dataset=kf.dataset)


def _grid_name(v: Variant, p: tuple[float, float, float]) -> str:
    return f"student-{v.name}-a{p[0]:g}-b{p[1]:g}-T{p[2]:g}"


def _plan(cfg: TrainConfig, folds: int, variants: Sequence[Variant], grid: Sequence[tuple] | None) -> dict:
    return {"kind": "btseg-cv", "folds": folds, "variants": [v.name for v in variants],
            "search": [list(p) for p in grid] if grid else None,
            "config": {k: v for k, v in cfg.to_dict().items() if k not in pipeline.RUNTIME_FIELDS}}


def _check_plan(out: Path, plan: dict) -> None:
    path = out / PLAN_FILE
    if path.exists():
        old = read_json(path)
        diff = [k for k in plan if k != "variants" and old.get(k) != plan[k]]
        if not set(old.get("variants", ())) <= set(plan["variants"]):  # adding variants extends a study
            diff.append("variants")
        if diff:
            raise ConfigError(f"{path}: this directory holds a cross-validation with other {', '.join(diff)}; "
                              "use another --out (or delete it to start over)")
        plan = {**plan, "variants": old["variants"] + [v for v in plan["variants"] if v not in old["variants"]]}
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, plan)


def _held_out(pkg: Path, samples: Dataset) -> list[dict[str, Any]]:
    """Per-image Dice/IoU on the held-out fold (btseg.metrics through evaluate_package, with
    the package's own post-processing and "no lesion" decision: ``lesion_predicted``)."""
    s = evaluate_package(pkg, samples, distances=False, per_image=True)
    return [{"id": r["id"], "label": r["label"], "dice": r["dice"], "iou": r["iou"],
             "lesion_predicted": bool(r.get("present", not math.isnan(r["precision"])))} for r in s["per_image"]]


def _student(v: Variant, dataset: Dataset, splits: Splits, cfg: TrainConfig, fold_dir: Path, ctx: ddp.DistContext,
             grid: Sequence[tuple] | None, progress: Progress | None) -> dict[str, Any]:
    """Train one variant (every grid point with ``grid``; the best on validation is chosen)."""
    vcfg = cfg.replace(kd=v.kd, teachers=v.teachers)
    if v.kd == "none" or not grid:
        name = f"student-{v.name}"
        res = pipeline.train_student(dataset, splits, vcfg, fold_dir, ctx, True, None, name, progress)
        return {"package": name, "val_dice": res.get("val", {}).get("overall", {}).get("dice")}
    tried = []
    for p in grid:
        name = _grid_name(v, p)
        res = pipeline.train_student(dataset, splits, vcfg.replace(alpha=p[0], beta=p[1], temperature=p[2]),
                                     fold_dir, ctx, True, None, name, progress)
        tried.append({"alpha": p[0], "beta": p[1], "temperature": p[2], "package": name,
                      "val_dice": res.get("val", {}).get("overall", {}).get("dice")})
    best = max(tried, key=lambda t: -1.0 if t["val_dice"] is None else t["val_dice"])  # first of equals
    return {"package": best["package"], "val_dice": best["val_dice"],
            "chosen": {k: best[k] for k in ("alpha", "beta", "temperature")}, "search": tried}


def run_fold(i: int, dataset: Dataset, kf: KFold, out: Path, cfg: TrainConfig, ctx: ddp.DistContext,
             variants: Sequence[Variant], grid: Sequence[tuple] | None, progress: Progress | None) -> dict | None:
    """Train and score fold ``i`` (or return its finished record); the record on rank 0 only."""
    fold_dir = out / f"fold-{i}"
    done = ddp.on_main(ctx, lambda: read_json(fold_dir / FOLD_FILE) if (fold_dir / FOLD_FILE).exists() else None,
                       f"fold {i}: checking for a finished fold")
    if done is not None and all(v.name in done["variants"] for v in variants):
        return done
    have = done["variants"] if done is not None else {}  # a finished fold extended with new variants
    path = splits_path(fold_dir)
    with ddp.collective(ctx, f"writing {path}"):
        if ctx.is_main and not path.exists():
            fold_dir.mkdir(parents=True, exist_ok=True)
            fold_splits(kf, i).save(path)
    splits = Splits.load(path)
    if any(v.kd != "none" for v in variants):
        for kind in pipeline.TEACHERS:
            pipeline.train_teacher(kind, dataset, splits, cfg, fold_dir, ctx, True, progress)
    students = {v.name: _student(v, dataset, splits, cfg, fold_dir, ctx, grid, progress)
                for v in variants if v.name not in have}
    test = splits.select(dataset, "test")

    def score_and_commit() -> dict:
        for rec in students.values():
            rec["rows"] = _held_out(fold_dir / rec["package"], test)
        record = {"fold": i, "n_test": len(test), "n_val": len(splits.val), "n_train": len(splits.train),
                  "variants": {**have, **students}}
        write_json(fold_dir / FOLD_FILE, record)
        return record

    return ddp.on_main(ctx, score_and_commit, f"fold {i}: scoring the held-out images")


def run_cv(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *, folds: int = 5,
           variants: Sequence[Variant] = (Variant("dual"), Variant("none")),
           grid: Sequence[tuple[float, float, float]] | None = None, only: Sequence[int] | None = None,
           progress: Progress | None = None, n_resamples: int = 10_000, skip_bad: bool = False) -> dict[str, Any]:
    """Cross-validate: every fold (or ``only`` these), then the summary once all are done.
    ``skip_bad``: leave the data set's bad items out (named once, recorded in folds.json and
    every package's model.json) instead of refusing it.

    Returns the summary (:func:`summarise`, also written to ``OUT/cv.json`` and ``cv.md``),
    or ``{"folds_done": [...], "folds": k}`` while some folds are still missing; ``{}`` off rank 0.
    """
    out = Path(out_dir)
    if folds < 3:
        raise ConfigError(f"folds={folds}: expected >= 3 (each fold needs a test, a validation and a training part)")
    ctx = ddp.init_distributed(cfg.device)
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    try:
        dataset = open_dataset(data_dir, include_normal=True, cache=True, verify=True, skip_bad=skip_bad)
        dataset.require_labels()
        plan = _plan(cfg, folds, variants, grid)
        kpath = out / KFOLD_FILE
        with ddp.collective(ctx, f"writing {kpath}"):
            if ctx.is_main:
                _check_plan(out, plan)
                if not kpath.exists():
                    kfold(dataset, folds, seed=cfg.seed).save(kpath)
        kf = KFold.load(kpath)
        todo = range(folds) if only is None else sorted(set(only))
        bad = [i for i in todo if not 0 <= i < folds]
        if bad:
            raise ConfigError(f"--only {bad}: expected fold numbers in 0..{folds - 1}")
        for i in todo:
            run_fold(i, dataset, kf, out, cfg, ctx, variants, grid, progress)
        if not ctx.is_main:
            return {}
        records = [read_json(out / f"fold-{i}" / FOLD_FILE) for i in range(folds)
                   if (out / f"fold-{i}" / FOLD_FILE).exists()]
        if len(records) < folds:
            return {"folds": folds, "folds_done": [r["fold"] for r in records]}
        summary = summarise(records, [v.name for v in variants], n_resamples)
        summary.update(plan=plan, out=str(out))
        write_json(out / SUMMARY_FILE, summary)
        with atomic_write(out / "cv.md") as f:
            f.write(markdown(summary))
        return summary
    finally:
        ddp.cleanup(ctx)


def _rows(records: Sequence[dict], variant: str) -> dict[str, dict]:
    return {r["id"]: r for rec in records for r in rec["variants"][variant]["rows"]}


def _block(rows: Sequence[dict]) -> dict[str, Any]:
    normal = [r for r in rows if r["label"] == "normal"]
    return {"n": len(rows), "dice": reduce(r["dice"] for r in rows), "iou": reduce(r["iou"] for r in rows),
            **({"false_lesion": {"k": sum(r["lesion_predicted"] for r in normal), "n": len(normal)}}
               if normal else {})}


def summarise(records: Sequence[dict], variants: Sequence[str], n_resamples: int = 10_000,
              seed: int = 0) -> dict[str, Any]:
    """Over every held-out image: per variant and class mean ± sd of Dice/IoU (normal: false-
    lesion count), and for every pair of variants the paired bootstrap of the difference.

    ``records`` are the folds' ``fold.json`` contents.  Groups: ``overall``, ``lesion``
    (benign + malignant) and each label.  Pairs: ``"a - b"`` for a listed before b, with the
    per-image Dice difference overall and on lesion images, and the difference in the
    false-lesion indicator on normal images, each ``{delta, ci95_low, ci95_high, n}``.
    """
    per: dict[str, Any] = {}
    for v in variants:
        rows = list(_rows(records, v).values())
        labels = sorted({r["label"] for r in rows})
        groups = {"overall": rows, "lesion": [r for r in rows if r["label"] in LESION],
                  **{lab: [r for r in rows if r["label"] == lab] for lab in labels}}
        per[v] = {g: _block(rs) for g, rs in groups.items() if rs}
        per[v]["per_fold_dice"] = [reduce(r["dice"] for r in rec["variants"][v]["rows"])["mean"] for rec in records]
    pairs: dict[str, Any] = {}
    for a, b in itertools.combinations(variants, 2):
        ra, rb = _rows(records, a), _rows(records, b)
        ids = sorted(set(ra) & set(rb))
        block = {}
        for key, sel, value in (("dice", None, "dice"), ("dice_lesion", LESION, "dice"),
                                ("false_lesion_normal", ("normal",), "lesion_predicted")):
            use = [i for i in ids if sel is None or ra[i]["label"] in sel]
            if not use:
                continue
            d, lo, hi = paired_bootstrap([float(ra[i][value]) for i in use], [float(rb[i][value]) for i in use],
                                         n_resamples, seed)
            block[key] = {"delta": round(d, 5), "ci95_low": round(lo, 5), "ci95_high": round(hi, 5), "n": len(use)}
        pairs[f"{a} - {b}"] = block
    search = {v: [rec["variants"][v].get("chosen") for rec in records] for v in variants
              if any("chosen" in rec["variants"][v] for rec in records)}
    return {"folds": len(records), "n_images": sum(r["n_test"] for r in records), "variants": per,
            "pairs": pairs, "search": search, "bootstrap": {"resamples": n_resamples, "seed": seed,
                                                            "interval": "95% percentile, images resampled"}}


def _ms(block: dict) -> str:
    return "-" if math.isnan(block["mean"]) else f"{block['mean']:.3f} ± {block['std']:.3f}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown: one table per metric block, the pairs, the KD search."""
    lines = [f"# Cross-validation: {summary['folds']} folds, {summary['n_images']} held-out images", "",
             "Each image scored once, by the fold that held it out; mean ± sd over images (btseg.metrics).", "",
             "| variant | group | n | Dice | IoU | normal false-lesion |", "|---|---|---|---|---|---|"]
    for v, groups in summary["variants"].items():
        for g, b in groups.items():
            if g == "per_fold_dice":
                continue
            fl = f"{b['false_lesion']['k']} of {b['false_lesion']['n']}" if "false_lesion" in b else ""
            lines.append(f"| {v} | {g} | {b['n']} | {_ms(b['dice'])} | {_ms(b['iou'])} | {fl} |")
    if summary["pairs"]:
        lines += ["", "Paired bootstrap (by image, 95% percentile interval, "
                  f"{summary['bootstrap']['resamples']} resamples):", "",
                  "| pair | metric | n | Δ | 95% CI |", "|---|---|---|---|---|"]
        for pair, block in summary["pairs"].items():
            for m, c in block.items():
                lines.append(f"| {pair} | {m} | {c['n']} | {c['delta']:+.4f} | "
                             f"[{c['ci95_low']:+.4f}, {c['ci95_high']:+.4f}] |")
    for v, chosen in summary.get("search", {}).items():
        lines += ["", f"KD weights chosen on validation for {v}, per fold: " + "; ".join(
            f"fold {i}: " + ("-" if c is None else f"alpha {c['alpha']:g}, beta {c['beta']:g}, T {c['temperature']:g}")
            for i, c in enumerate(chosen))]
    return "\n".join(lines) + "\n"
