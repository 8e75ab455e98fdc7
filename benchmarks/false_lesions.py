"""How often a package draws a lesion on normal images, with no presence decision.

Runs the package through the runtime (``Segmenter``, torch backend: what a cart shows) on
one part of its split and counts the normal images whose mask has any pixel (false-lesion
rate, k of n) and the lesion images whose mask is not empty (lesion images flagged).

Usage::

    python benchmarks/false_lesions.py runs/hard/student --data phantom-hard [--part test|val|all]

Prints one JSON object.  The splits file is the one next to the package (``splits.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from btseg.data import Splits, open_dataset
from btseg.runtime import Segmenter


def count(package: str, data: str, part: str) -> dict:
    """``{"normal_false_lesion": [k, n], "lesion_flagged": [k, n], ...}`` for one part."""
    ds = open_dataset(data, include_normal=True)
    if part != "all":
        ds = Splits.load(Path(package).resolve().parent / "splits.json").select(ds, part)
    seg = Segmenter.load(package, backend="torch", threads=1)
    flagged = {"normal": [0, 0], "lesion": [0, 0]}
    names = []
    for s in ds:
        key = "normal" if s.label == "normal" else "lesion"
        hit = bool(seg.segment(s.image).mask.any())
        flagged[key][0] += hit
        flagged[key][1] += 1
        if hit and key == "normal":
            names.append(s.id)
    k, n = flagged["normal"]
    return {"package": package, "data": data, "part": part, "normal_false_lesion": [k, n],
            "normal_false_lesion_rate": round(k / n, 4) if n else None, "lesion_flagged": flagged["lesion"],
            "normal_flagged_ids": names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package")
    ap.add_argument("--data", required=True)
    ap.add_argument("--part", default="test", choices=("train", "val", "test", "all"))
    a = ap.parse_args()
    print(json.dumps(count(a.package, a.data, a.part)))


if __name__ == "__main__":
    main()
