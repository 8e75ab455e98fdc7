"""Statistics and report of the KD ablation (:mod:`benchmarks.ablation`): pure functions.

* :func:`score`: one package's test metrics, per image too (``btseg.metrics``).
* :func:`btseg.stats.paired_bootstrap` (re-exported): the 95% interval of a mean paired
  difference, resampling images with replacement (numpy, seeded).
* :func:`summarise`: mean +- std per configuration and every KD variant against no KD.
* :func:`write_report`: ``ablation.json``, ``ablation.md`` and ``ablation.png``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from btseg.data.splits import splits_path
from btseg.io import atomic_path, atomic_write, read_json, write_json
from btseg.stats import paired_bootstrap  # noqa: F401 - re-exported: the one implementation

METRICS = ("dice", "dice_lesion", "dice_benign", "dice_malignant", "normal_empty_rate", "hd95")
REFERENCE = "student/none"


def score(pkg_dir: Path, data: Path, splits: Path) -> dict[str, Any]:
    """Test-split metrics of one package (``btseg.metrics`` via ``evaluate_package``)."""
    import math

    from btseg.bench.flops import count_macs
    from btseg.data import Splits, open_dataset
    from btseg.distill.evaluate import count_params, evaluate_package
    from btseg.package import load_package

    pkg = load_package(pkg_dir)
    test = Splits.load(splits).select(open_dataset(data), "test")
    s = evaluate_package(pkg, test, per_image=True)
    rows = [{"id": r["id"], "label": r["label"], "dice": r["dice"], "hd95": r["hd95"],
             "pred_empty": math.isnan(r["precision"])} for r in s["per_image"]]

    def mean(labels: tuple[str, ...], key: str = "dice") -> float | None:
        v = [float(r[key]) for r in rows if r["label"] in labels]
        return sum(v) / len(v) if v else None

    model = pkg.build_model()
    training = pkg.config.training
    return {"dice": s["overall"]["dice"]["mean"], "dice_lesion": mean(("benign", "malignant")),
            "dice_benign": mean(("benign",)), "dice_malignant": mean(("malignant",)),
            "normal_empty_rate": mean(("normal",), "pred_empty"), "hd95": s["overall"]["hd95"]["mean"],
            "hd95_lesion": mean(("benign", "malignant"), "hd95"), "n_test": len(rows),
            "val_dice": pkg.config.metrics["val"]["overall"]["dice"]["mean"],
            "params": count_params(model), "macs": count_macs(model, pkg.config.input_size),
            "best_epoch": training.get("best_epoch"), "epochs_run": training.get("epochs_run"),
            "train_seconds": training.get("seconds"), "per_image": rows}


def config_key(run: dict[str, Any]) -> str:
    """``student/<kd>[-<teachers>]`` or ``baseline/<arch>``; routed is the default, left out."""
    if run["role"] == "baseline":
        return f"baseline/{run['arch']}"
    key = f"student/{run['kd']}"
    if run.get("teachers") not in (None, "routed"):
        key += f"-{run['teachers']}"
    return key + run.get("variant", "")


def _matrix(runs: list[dict], labels: Sequence[str], value: str) -> tuple[dict[int, dict[str, float]], list[str]]:
    """``{seed: {image id: value}}`` on ``labels`` and the ids every seed has.

    ``value="empty"`` is 1.0 where the model predicted no lesion pixel (``pred_empty``).
    """
    cell = (lambda p: float(p["pred_empty"])) if value == "empty" else (lambda p: float(p["dice"]))
    by_seed = {r["seed"]: {p["id"]: cell(p) for p in r["per_image"] if p["label"] in labels} for r in runs}
    ids = sorted(set.intersection(*(set(v) for v in by_seed.values()))) if by_seed else []
    return by_seed, ids


def compare(runs_a: list[dict], runs_b: list[dict], labels: Sequence[str], value: str = "dice",
            n_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap of configuration a minus b over the seeds both have.

    ``value="dice"`` compares per-image Dice on ``labels``; ``value="empty"`` compares the
    indicator "predicted empty" (normal images: the mean is the normal-empty rate).
    """
    ma, ids_a = _matrix(runs_a, labels, value)
    mb, ids_b = _matrix(runs_b, labels, value)
    seeds = sorted(set(ma) & set(mb))
    ids = sorted(set(ids_a) & set(ids_b))
    if not seeds or not ids:
        return {"n_seeds": len(seeds), "n_images": len(ids)}
    a = np.array([[ma[s][i] for i in ids] for s in seeds])
    b = np.array([[mb[s][i] for i in ids] for s in seeds])
    delta, lo, hi = paired_bootstrap(a, b, n_resamples, seed)
    return {"delta": round(delta, 5), "ci95_low": round(lo, 5), "ci95_high": round(hi, 5),
            "n_seeds": len(seeds), "n_images": len(ids), "seeds": seeds, "resamples": n_resamples,
            "bootstrap_seed": seed}


def _mean_std(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    return {"mean": round(float(v.mean()), 5) if v.size else math.nan,
            "std": round(float(v.std(ddof=1)), 5) if v.size > 1 else math.nan, "n": int(v.size)}


def summarise(runs: list[dict[str, Any]], n_resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Mean +- std (sample std over seeds) per configuration; each student config vs no KD."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in runs:
        groups[config_key(r)].append(r)
    configs = {k: {"n_seeds": len(v), "seeds": sorted(r["seed"] for r in v),
                   **{m: _mean_std([r[m] for r in v]) for m in METRICS},
                   "params": v[0]["params"], "macs": v[0]["macs"]} for k, v in groups.items()}
    vs_none = {}
    for k, v in groups.items():
        if k == REFERENCE or REFERENCE not in groups:
            continue
        vs_none[k] = {"dice_lesion": compare(v, groups[REFERENCE], ("benign", "malignant"), "dice", n_resamples, seed),
                      "normal_empty_rate": compare(v, groups[REFERENCE], ("normal",), "empty", n_resamples, seed)}
    out: dict[str, Any] = {"configs": configs, "vs_none": vs_none}
    dual = vs_none.get("student/dual")
    if dual and "delta" in dual["dice_lesion"]:
        d, e = dual["dice_lesion"], dual["normal_empty_rate"]
        out["dual_vs_none"] = {"delta_dice_lesion": d["delta"], "ci95_low": d["ci95_low"], "ci95_high": d["ci95_high"],
                               "n_seeds": d["n_seeds"], "n_lesion_images": d["n_images"],
                               "delta_normal_empty_rate": e.get("delta"), "normal_ci95_low": e.get("ci95_low"),
                               "normal_ci95_high": e.get("ci95_high"), "n_normal_images": e.get("n_images")}
    return out


def document(study: dict[str, Any], recs: dict[str, dict | None], work: Path, cmd: str,
             resamples: int) -> dict[str, Any]:
    """The ablation document from the finished job results (``None``: not finished, listed
    under ``missing``, never filled in)."""
    runs = [r for r in recs.values() if r and r["role"] != "teacher"]
    teachers = {n: {k: v for k, v in r.items() if k not in ("per_image", "cfg")} for n, r in recs.items()
                if r and r["role"] == "teacher"}
    data = read_json(work / "data" / "phantom.json")
    split = read_json(splits_path(work / "runs"))
    sessions = read_json(work / "sessions.json") if (work / "sessions.json").exists() else []
    student = next((r for r in runs if r["role"] == "student"), None)
    return {"teacher_params": next(iter(teachers.values()))["params"] if teachers else None,
            "student_params": student["params"] if student else None,
            "data": {"generator": "btseg.data.phantom.synthesize", "n": data["n"], "size": data["size"],
                     "seed": data["seed"], "counts": data["counts"], "split_seed": split.get("seed"),
                     "n_train": len(split["train"]), "n_val": len(split["val"]), "n_test": len(split["test"]),
                     "duplicates": split.get("duplicates")},
            "study": study, "teacher_eval": teachers, "missing": [n for n, r in recs.items() if r is None],
            "wall_seconds": round(sum(s["seconds"] for s in sessions), 1), "sessions": sessions,
            "bootstrap": {"resamples": resamples, "seed": 0, "paired_by": "image and seed"},
            "command": cmd, "summary": summarise(runs, resamples, seed=0), "runs": [_compact(r) for r in runs]}


def _compact(run: dict[str, Any]) -> dict[str, Any]:
    """A run as ``ablation.json`` keeps it: no training config (``WORK/results`` has it),
    per-image values to 5 decimals (the summary is computed before this rounding)."""
    rows = [{k: round(v, 5) if isinstance(v, float) else v for k, v in p.items()} for p in run["per_image"]]
    return {**{k: v for k, v in run.items() if k not in ("cfg", "per_image")}, "per_image": rows}


def _fmt(ms: dict[str, float], digits: int = 3) -> str:
    if ms["n"] == 0:
        return "-"
    return f"{ms['mean']:.{digits}f}" + ("" if math.isnan(ms["std"]) else f" ± {ms['std']:.{digits}f}")


def markdown(doc: dict[str, Any]) -> str:
    """The ablation table (mean ± std over seeds) and the intervals against no KD."""
    cols = ("configuration", "seeds", "Dice", "lesion Dice", "benign", "malignant", "normal empty",
            "HD95 px", "params", "GMACs")
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for k, c in doc["summary"]["configs"].items():
        lines.append("| " + " | ".join([k, str(c["n_seeds"]), *(_fmt(c[m]) for m in METRICS[:5]),
                                        _fmt(c["hd95"], 1), f"{c['params'] / 1e6:.3f} M",
                                        f"{c['macs'] / 1e9:.3f}"]) + " |")
    lines += ["", "Each configuration minus the no-KD student (paired bootstrap over test images, seeds paired, "
              f"{doc['bootstrap']['resamples']} resamples, 95% percentile interval):", "",
              "| configuration | Δ lesion Dice [95% CI] | Δ normal-empty rate [95% CI] |", "|---|---|---|"]
    for k, v in doc["summary"]["vs_none"].items():
        cell = lambda x: "-" if "delta" not in x else f"{x['delta']:+.4f} [{x['ci95_low']:+.4f}, {x['ci95_high']:+.4f}]"  # noqa: E731
        lines.append(f"| {k} | {cell(v['dice_lesion'])} | {cell(v['normal_empty_rate'])} |")
    return "\n".join(lines) + "\n"


def plot(doc: dict[str, Any], path: Path) -> None:
    """Lesion Dice per configuration: one point per seed, a bar at the mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(doc["summary"]["configs"])
    fig, ax = plt.subplots(figsize=(1.1 * len(keys) + 2, 4))
    for i, k in enumerate(keys):
        vals = [r["dice_lesion"] for r in doc["runs"] if config_key(r) == k]
        ax.scatter([i] * len(vals), vals, s=18, color="tab:blue", zorder=3)
        ax.hlines(np.mean(vals), i - 0.3, i + 0.3, color="k", zorder=2)
    ax.set_xticks(range(len(keys)), [k.split("/", 1)[1] for k in keys], rotation=30, ha="right")
    ax.set_ylabel("lesion Dice (test)")
    ax.set_title("KD ablation: lesion Dice per configuration (points: seeds, bar: mean)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(doc: dict[str, Any], out_dir: Path, stem: str = "ablation") -> list[Path]:
    """``<stem>.json``, ``<stem>.md`` (with the command) and ``<stem>.png`` under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{e}" for e in ("json", "md", "png")]
    write_json(paths[0], doc)
    head = [f"# KD ablation ({doc['data']['n']} phantoms at {doc['data']['size']} px, test n={doc['data']['n_test']})",
            "", f"Teachers {doc['teacher_params'] / 1e6:.3f} M params each, student {doc['student_params'] / 1e6:.3f} M "
            f"(ratio {doc['teacher_params'] / doc['student_params']:.1f}x); split and teachers fixed, "
            "seeds vary init, augmentation and data order. Test split only; checkpoints chosen on val.", "",
            f"Reproduce: `{doc['command']}`", ""]
    st = doc.get("study")
    if st:
        head += [f"Schedule: teachers {st['teacher_epochs']} x {st['steps_per_epoch']} steps (seed {st['teacher_seed']}), "
                 f"students and baselines {st['epochs']} x {st['steps_per_epoch']} steps, batch 8, seeds "
                 f"{', '.join(map(str, st['seeds']))}; study wall time {doc.get('wall_seconds', 0) / 60:.1f} min "
                 f"({len(doc.get('sessions', []))} session(s)).", ""]
    for name, t in doc.get("teacher_eval", {}).items():
        head.append(f"- {name}: test Dice {t['dice']:.3f}, benign {t['dice_benign']:.3f}, malignant "
                    f"{t['dice_malignant']:.3f}, normal empty {t['normal_empty_rate']:.2f} (best val epoch {t['best_epoch']})")
    if doc.get("missing"):
        head += ["", f"**Missing (not finished): {', '.join(doc['missing'])}**"]
    head.append("")
    with atomic_write(paths[1]) as f:
        f.write("\n".join(head) + "\n" + markdown(doc))
    plot(doc, paths[2])
    return paths
