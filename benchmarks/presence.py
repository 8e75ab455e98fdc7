"""The "no lesion" decision: every candidate rule, calibrated on val, measured on val and test.

For one trained package of a ``btseg-distill`` run (``RUN/splits.json``), each candidate of
:data:`btseg.distill.calibrate.CANDIDATES` (a peak-probability threshold with minimum
component areas, a mean-probability threshold, a probability-mass threshold, an area
threshold) gets its threshold from the validation split exactly as training does (the
largest one still detecting ``--target`` of the val lesion images); then its lesion
sensitivity and normal false-lesion rate are counted on val **and** on test.  Test numbers
are reported, never used to choose.  "ungated" is the old behaviour (any mask pixel = a
lesion).  The row marked ``chosen`` is the one the calibration rule picks (fewest val normal
images flagged) and the one training writes into ``model.json``.

``--calibrated DIR`` also writes a copy of the package with that decision recorded in its
``model.json`` (as training does) and scores its test split through the runtime
(``Segmenter``, torch backend, :func:`btseg.bench.accuracy.evaluate`: the bench's path), so
the counts are those a cart would produce.

Usage::

    nice -n 15 python benchmarks/presence.py --run runs/hard --data phantom-hard \\
        --package student --out benchmarks/results/presence-demo.json

Writes the JSON (with the command) and prints a Markdown table.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np


def _measure(pkg_dir: Path, data: Path, run: Path, target: float) -> dict[str, Any]:
    import torch

    from btseg.data import Splits, open_dataset
    from btseg.data.splits import splits_path
    from btseg.distill.calibrate import CANDIDATES, calibrate, evaluate_candidate, image_components
    from btseg.distill.evaluate import predict_probs
    from btseg.package import load_package

    torch.set_num_threads(1)
    pkg = load_package(pkg_dir)
    cfg = pkg.config
    post = {k: v for k, v in (cfg.postprocess or {}).items() if k != "presence"}
    ds = open_dataset(data, include_normal=True)
    splits = Splits.load(splits_path(run))
    model = pkg.build_model()
    parts = {}
    for part in ("val", "test"):
        sub = splits.select(ds, part)
        comps, has = [], []
        for s, prob in predict_probs(model, sub, cfg.preprocess):
            comps.append(image_components(prob, cfg.threshold, post))
            has.append(bool(np.asarray(s.mask).any()))
        parts[part] = (comps, has)
    spec = calibrate(*parts["val"], target=target, pixel_threshold=cfg.threshold)
    rows = [{"rule": "ungated", "score": "peak", "min_area_frac": 0.0, "threshold": cfg.threshold}]
    for cand in spec["calibration"]["candidates"]:
        rows.append({"rule": f"{cand['score']} >= t, components >= {cand['min_area_frac']:g} of the image",
                     **{k: cand[k] for k in ("score", "min_area_frac", "threshold")}})
    chosen = (spec["score"], spec["min_area_frac"], spec["threshold"])
    for r in rows:
        r["chosen"] = r["rule"] != "ungated" and (r["score"], r["min_area_frac"], r["threshold"]) == chosen
        for part, (comps, has) in parts.items():
            if r["threshold"] is None:
                r[part] = None
                continue
            c = evaluate_candidate(comps, has, r["score"], r["min_area_frac"], r["threshold"])
            r[part] = {**c, "sensitivity": c["detected"] / c["n_lesion"] if c["n_lesion"] else None,
                       "false_lesion_rate": c["flagged"] / c["n_normal"] if c["n_normal"] else None}
    recorded = (cfg.postprocess or {}).get("presence")
    return {"package": str(pkg_dir), "data": str(data), "run": str(run), "target_sensitivity": target,
            "calibrated": spec, "recorded_in_model_json": {k: v for k, v in (recorded or {}).items()
                                                           if k != "calibration"} or None,
            "rows": rows}


def _runtime(src: Path, dest: Path, presence: dict[str, Any], data: Path, run: Path) -> dict[str, Any]:
    """Copy ``src`` to ``dest`` with ``presence`` in its model.json; its test split through the Segmenter."""
    import shutil

    from btseg.bench.accuracy import evaluate, load_test_set
    from btseg.data.splits import splits_path
    from btseg.layout import MANIFEST
    from btseg.package import load_package
    from btseg.runtime import Segmenter

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("train", MANIFEST))
    pkg = load_package(dest)
    pkg.config.postprocess = {**pkg.config.postprocess, "presence": presence}
    pkg.write_config()  # schema-checked
    seg = Segmenter.load(dest, backend="torch", threads=1)
    summary = evaluate(seg, load_test_set(data, splits_file=splits_path(run)), distances=False)
    lesion = [summary["per_class"][k]["dice"] for k in ("benign", "malignant") if k in summary["per_class"]]
    return {"package": str(dest), "backend": seg.info()["backend"], "presence": summary["presence"],
            "dice": summary["overall"]["dice"]["mean"],
            "lesion_dice": sum(d["mean"] * d["n_valid"] for d in lesion) / max(1, sum(d["n_valid"] for d in lesion))}


def markdown(res: dict[str, Any]) -> str:
    def cell(m: dict | None, k: str, n: str, key: str) -> str:
        return "-" if not m else f"{m[k]} of {m[n]}" + (f" ({m[key]:.3f})" if m[key] is not None else "")

    lines = ["| rule | threshold | val lesions detected | val normals flagged | test lesions detected | "
             "test normals flagged | chosen |", "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        t = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
        lines.append(f"| {r['rule']} | {t} | {cell(r['val'], 'detected', 'n_lesion', 'sensitivity')} | "
                     f"{cell(r['val'], 'flagged', 'n_normal', 'false_lesion_rate')} | "
                     f"{cell(r['test'], 'detected', 'n_lesion', 'sensitivity')} | "
                     f"{cell(r['test'], 'flagged', 'n_normal', 'false_lesion_rate')} | {'yes' if r['chosen'] else ''} |")
    return "\n".join(lines)


@click.command()
@click.option("--run", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True,
              help="A btseg-distill output directory (holds splits.json).")
@click.option("--data", type=click.Path(path_type=Path, exists=True, file_okay=False), required=True)
@click.option("--package", default="student", show_default=True, help="Package directory name inside --run.")
@click.option("--target", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the result JSON here.")
@click.option("--calibrated", type=click.Path(path_type=Path), default=None,
              help="Write the package with the calibrated decision here and score it through the runtime.")
def main(run: Path, data: Path, package: str, target: float, out: Path | None, calibrated: Path | None) -> None:
    """Measure every presence rule on val and test of one package."""
    from btseg.io import atomic_write, write_json

    t0 = time.perf_counter()
    res = _measure(run / package, data, run, target)
    if calibrated is not None:
        res["runtime"] = _runtime(run / package, calibrated, res["calibrated"], data, run)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    res["command"] = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    md = markdown(res)
    if "runtime" in res:
        rt = res["runtime"]["presence"]
        md += (f"\n\nThrough the runtime ({res['runtime']['backend']}, calibrated package): test lesion images "
               f"detected {rt['lesion']['detected']} of {rt['lesion']['n']}, normal images flagged "
               f"{rt['normal']['flagged']} of {rt['normal']['n']}; lesion Dice {res['runtime']['lesion_dice']:.4f}.")
    click.echo(md)
    if out is not None:
        write_json(out, res)
        with atomic_write(out.with_suffix(".md")) as f:
            f.write(f"# Presence rules on {data}\n\nCommand: `{res['command']}`\n\n{md}\n")


if __name__ == "__main__":
    main()
