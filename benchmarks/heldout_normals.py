"""False lesions counted where they can be counted: packages on held-out normal phantoms.

A demo test split holds 8 normal images, so it measures a false-lesion rate in 12.5-point
steps.  This scores each package, with the presence decision in its ``model.json``, through
the one accuracy path (:func:`btseg.distill.evaluate.evaluate_package`) on:

* the validation and test splits of its run (lesion images detected, normal images flagged);
* one or more sets of normal phantoms made apart from the run (``--normals``, e.g.
  ``btseg-demo``'s ``OUT/normals``: another seed, in no split), each with a Wilson 95%
  interval (:func:`btseg.stats.proportion_ci`);
* the same held-out sets without the presence decision (the mask alone: flagged when not
  empty), to show what the decision removes;
* the image-level AUC of the package's own presence score, validation lesion images
  against every held-out normal (how well the score separates them, whatever threshold);
* the held-out normals flagged at the threshold the calibration rule would pick from the
  validation *and test* lesion images together (twice the images of the validation split
  alone): an analysis of what a less noisy threshold would cost, not a rule to ship.

Usage (the numbers in benchmarks/RESULTS.md)::

    python benchmarks/heldout_normals.py --data demo-out/data --splits demo-out/run/splits.json \\
        --normals demo-out/normals,normals-seed2 --packages demo-out/run/student demo-out/run/student-nokd \\
        --out benchmarks/results/heldout-normals
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btseg.cli.demo_report import lesion_columns  # noqa: E402
from btseg.io import atomic_write, write_json  # noqa: E402
from btseg.stats import proportion_ci  # noqa: E402


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney)."""
    if not pos or not neg:
        return None
    p, n = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))


def score_package(pkg: Path, val: Any, test: Any, normal_sets: dict[str, Any]) -> dict[str, Any]:
    from btseg.distill.calibrate import threshold_for
    from btseg.distill.evaluate import evaluate_package
    from btseg.package import load_package
    from btseg.runtime.postprocess import PostProcess

    cfg = load_package(pkg).config
    post = PostProcess.of(cfg)
    ungated = post.ungated()
    out: dict[str, Any] = {"package": str(pkg), "presence": {k: v for k, v in
                                                             ((cfg.postprocess or {}).get("presence") or {}).items()
                                                             if k != "calibration"}}
    ev = {name: evaluate_package(pkg, samples, distances=False, per_image=True)
          for name, samples in {"val": val, "test": test, **normal_sets}.items()}
    for part in ("val", "test"):
        p = ev[part]["presence"]
        out[part] = {"lesion_detected": p["lesion"]["detected"], "lesion_n": p["lesion"]["n"],
                     "normal_flagged": p["normal"]["flagged"], "normal_n": p["normal"]["n"]}
    out["test"]["lesion_dice"] = lesion_columns(ev["test"])[0]
    held_scores = []
    out["heldout"] = {}
    for name in normal_sets:
        p = ev[name]["presence"]["normal"]
        raw = evaluate_package(pkg, normal_sets[name], distances=False, post=ungated)["presence"]["normal"]
        out["heldout"][name] = {"flagged": p["flagged"], "n": p["n"], "ci95": proportion_ci(p["flagged"], p["n"]),
                                "flagged_ungated": raw["flagged"]}
        held_scores += [r["presence"] for r in ev[name]["per_image"]]
    val_lesion = [r["presence"] for r in ev["val"]["per_image"] if r["label"] != "normal"]
    out["auc_val_lesions_vs_heldout"] = auc(val_lesion, held_scores)
    # what the score could do with a less noisy threshold: the calibration's own rule
    # (btseg.distill.calibrate.threshold_for) on val + test lesions, counted on the held-out
    # normals. Uses test images, so it is an analysis, never a way to choose a package's rule
    lesions = val_lesion + [r["presence"] for r in ev["test"]["per_image"] if r["label"] != "normal"]
    t = threshold_for(lesions, 0.95)
    out["at_95pct_of_val_test_lesions"] = None if t is None else {
        "threshold": t, "lesions_detected": sum(x >= t for x in lesions), "lesions_n": len(lesions),
        "heldout_flagged": sum(x >= t and x > 0 for x in held_scores), "heldout_n": len(held_scores)}
    return out


def _operating(o: dict[str, Any] | None) -> str:
    if o is None:
        return "-"
    return (f"{o['threshold']:.4f}: {o['lesions_detected']} of {o['lesions_n']}, "
            f"{o['heldout_flagged']} of {o['heldout_n']}")


def markdown(doc: dict[str, Any]) -> str:
    sets = list(doc["normal_sets"])
    head = ["package", "rule", "val lesions / normals", "test lesions / normals",
            *[f"held-out `{s}` flagged [95% CI] (ungated)" for s in sets], "AUC",
            "at 95% of val+test lesions: threshold, lesions, held-out flagged", "test lesion Dice"]
    lines = [f"# {doc['title']}", "", f"Command: `{doc['command']}`", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for r in doc["packages"]:
        pr = r["presence"]
        rule = f"{pr['score']} >= {pr['threshold']:.4f}" if pr else "ungated"
        cells = [r["package"], rule,
                 *[f"{r[p]['lesion_detected']} of {r[p]['lesion_n']} / {r[p]['normal_flagged']} of {r[p]['normal_n']}"
                   for p in ("val", "test")],
                 *[f"{h['flagged']} of {h['n']} [{h['ci95'][0]:.2f}, {h['ci95'][1]:.2f}] ({h['flagged_ungated']})"
                   for h in (r["heldout"][s] for s in sets)],
                 "-" if r["auc_val_lesions_vs_heldout"] is None else f"{r['auc_val_lesions_vs_heldout']:.4f}",
                 _operating(r["at_95pct_of_val_test_lesions"]),
                 f"{r['test']['lesion_dice']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the run's data set")
    ap.add_argument("--splits", type=Path, required=True, help="the run's splits.json")
    ap.add_argument("--normals", required=True, help="comma list of held-out normal sets (directories)")
    ap.add_argument("--packages", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "heldout-normals",
                    help="prefix of the .json and .md written")
    ap.add_argument("--title", default="False lesions on held-out hard-normal phantoms")
    args = ap.parse_args(argv)
    doc = measure(args.data, args.splits, [Path(p) for p in args.normals.split(",") if p], args.packages,
                  args.title, "python " + " ".join(shlex.quote(a) for a in sys.argv))
    write(doc, args.out)
    print(markdown(doc))
    return 0


def measure(data_dir: Path, splits_file: Path, normals: list[Path], packages: list[Path], title: str,
            command: str) -> dict[str, Any]:
    """The results document: every package scored on its run's val/test and on each normal set."""
    from btseg.data import Splits, open_dataset

    data, splits = open_dataset(data_dir), Splits.load(splits_file)
    val, test = splits.select(data, "val"), splits.select(data, "test")
    sets = {p.name: open_dataset(p) for p in normals}
    return {"title": title, "command": command, "normal_sets": {k: str(v.root) for k, v in sets.items()},
            "packages": [score_package(p, val, test, sets) for p in packages]}


def write(doc: dict[str, Any], out: Path) -> None:
    """``out``.json and ``out``.md, each written atomically."""
    write_json(out.with_suffix(".json"), doc)
    with atomic_write(out.with_suffix(".md"), "w") as f:
        f.write(markdown(doc))


if __name__ == "__main__":
    sys.exit(main())
