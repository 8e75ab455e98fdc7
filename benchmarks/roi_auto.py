"""How often ``--roi auto`` finds the B-mode image: on screen captures and on plain B-mode.

Two kinds of frame, each scored against its true image mask by IoU:

* ``capture``: ``--n`` synthetic cart screen captures (tests/runtime/screen_util.py: a
  phantom B-mode image in a sector or rectangle on a dark frame with a header bar,
  burned-in text, a depth ruler with ticks, a grey or colour bar, a logo, calipers and
  grabber noise); the truth is the image's sector or rectangle;
* ``plain``: plain full-frame B-mode, the usual cart picture: the bundled sample images
  (``btseg.defaults.sample_images``) and ``--phantoms`` phantom frames (benign, malignant,
  normal; every other one with the hard-normal look-alikes: shadows, edge darkening; sizes
  256x256 and 640x480); the truth is the whole frame.

It reports the detection rate (IoU >= 0.9), mean / median / minimum IoU per kind and shape,
and the detection time.

    python benchmarks/roi_auto.py --n 50 --phantoms 40
    python benchmarks/roi_auto.py --n 50 --json roi_auto.json --save-worst /tmp/worst

The frames are synthetic or phantoms (the bundled samples are phantoms too): the numbers
say how the detector does on what the generators draw, not on a given vendor's screen.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "runtime"))  # the capture generator lives with the tests

from btseg.errors import DataError  # noqa: E402
from btseg.runtime.roi_auto import detect_roi, mask_iou  # noqa: E402
from screen_util import make_capture  # noqa: E402


def plain_frames(phantoms: int) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """(frame, truth = the whole frame, description) for the bundled samples and phantoms."""
    from btseg import defaults
    from btseg.data.phantom import sample
    from btseg.imageio import decode_image

    out = []
    for p in defaults.sample_images():
        img = decode_image(p)
        out.append((img, np.ones(img.shape[:2], bool), {"seed": p.name, "shape": "plain sample"}))
    for k in range(phantoms):
        img = sample(100 + k, k, ("benign", "malignant", "normal")[k % 3], 256, hard_normals=k % 2 == 1)[0]
        if k % 4 >= 2:
            img = cv2.resize(img, (640, 480), interpolation=cv2.INTER_LINEAR)
        out.append((img, np.ones(img.shape[:2], bool), {"seed": k, "shape": "plain phantom"}))
    return out


def score(n: int, first_seed: int = 0, phantoms: int = 0) -> list[dict]:
    """One row per frame: kind, seed, shape, IoU, detection time (ms)."""
    frames = [(screen, truth, {**desc, "kind": "capture"})
              for screen, truth, desc in map(make_capture, range(first_seed, first_seed + n))]
    frames += [(img, truth, {**d, "kind": "plain"}) for img, truth, d in plain_frames(phantoms)]
    rows = []
    for screen, truth, desc in frames:
        t0 = time.perf_counter()
        try:
            found = detect_roi(screen)
            iou, box = mask_iou(found.full, truth), list(found.box)
        except DataError as e:
            iou, box = 0.0, str(e)
        ms = (time.perf_counter() - t0) * 1e3
        rows.append({**desc, "iou": round(iou, 4), "found": box, "ms": round(ms, 1), "_screen": screen})
    return rows


def summary(rows: list[dict]) -> dict:
    """Rate of IoU >= 0.9, mean/median/min IoU, overall and per shape."""
    def stats(rs: list[dict]) -> dict:
        ious = np.array([r["iou"] for r in rs])
        return {"n": len(rs), "rate_iou_ge_0.9": round(float((ious >= 0.9).mean()), 3),
                "mean_iou": round(float(ious.mean()), 4), "median_iou": round(float(np.median(ious)), 4),
                "min_iou": round(float(ious.min()), 4), "ms_p50": round(float(np.median([r["ms"] for r in rs])), 1)}

    out = {}
    for kind in sorted({r["kind"] for r in rows}):
        out[kind] = stats([r for r in rows if r["kind"] == kind])
        for shape in sorted({r["shape"] for r in rows if r["kind"] == kind}):
            out[f"{kind}: {shape}"] = stats([r for r in rows if r["kind"] == kind and r["shape"] == shape])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="synthetic screen captures")
    ap.add_argument("--phantoms", type=int, default=40, help="plain full-frame phantom frames (plus the samples)")
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--json", type=Path, help="write the rows and summary here")
    ap.add_argument("--save-worst", type=Path, help="write the 3 worst captures (PNG) here")
    args = ap.parse_args()
    rows = score(args.n, args.seed, args.phantoms)
    s = summary(rows)
    print("| frames | IoU >= 0.9 | mean IoU | median IoU | min IoU | detect p50 ms |")
    print("|---|---|---|---|---|---|")
    for k, v in s.items():
        print(f"| {k} ({v['n']}) | {v['rate_iou_ge_0.9']:.0%} | {v['mean_iou']:.3f} | {v['median_iou']:.3f} "
              f"| {v['min_iou']:.3f} | {v['ms_p50']:.0f} |")
    worst = sorted(rows, key=lambda r: r["iou"])[:3]
    print("worst:", ", ".join(f"{r['kind']} {r['seed']} {r['shape']} IoU {r['iou']:.3f}" for r in worst))
    if args.save_worst:
        args.save_worst.mkdir(parents=True, exist_ok=True)
        for r in worst:
            img = r["_screen"] if r["_screen"].ndim == 2 else r["_screen"][..., ::-1]
            cv2.imwrite(str(args.save_worst / f"{r['kind']}_{r['seed']}.png"), img)
    if args.json:
        args.json.write_text(json.dumps({"summary": s, "rows": [{k: v for k, v in r.items() if k != "_screen"}
                                                                for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
