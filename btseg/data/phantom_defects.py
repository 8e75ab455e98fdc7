"""Real-set defects the phantom can write, so that tests meet what real data sets hold.

Public BUSI-like sets come with RGB images, 1-bit / RGB(A) / anti-aliased masks, calipers,
markers and text burned into the image, and the odd broken item: an image resized by the
publisher while its mask (or a stray extra ``_mask_1``) kept the old size, a mask without
an image, a missing mask, a truncated file.  ``synthesize(..., defects=...)`` (``btseg-data
synth --defects all``) writes each asked defect into one item, chosen by the seed, and
records in ``phantom.json`` which file got which defect and whether it makes the item
unusable (``bad``): the loaders must refuse or skip exactly those and read the others right.

Example::

    >>> s = synthesize("ph", n=40, size=64, defects=DEFECTS)        # doctest: +SKIP
    >>> [d["item"] for d in s["defects"] if d["bad"]]                 # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from btseg.errors import ArtifactError, ConfigError
from btseg.io import atomic_write, write_png

# defects whose item a loader must reject (the rest must load, and load right)
BAD = ("size_mismatch", "stray_mask", "orphan_mask", "missing_mask", "truncated")
GOOD = ("rgb_image", "mask_1bit", "mask_rgb", "mask_rgba", "mask_antialiased", "calipers", "markers", "text")
DEFECTS = GOOD + BAD


def parse(spec: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """``"all"``, ``"bad"``, ``"good"``, a comma list or a sequence -> defect names, checked."""
    if not spec:
        return ()
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in (n.strip() for n in names):
        group = {"all": DEFECTS, "bad": BAD, "good": GOOD}.get(name, (name,))
        for g in group:
            if g not in DEFECTS:
                raise ConfigError(f"defect {g!r}: expected all, bad, good or one of {', '.join(DEFECTS)}")
            if g not in out:
                out.append(g)
    return tuple(out)


def assign(defects: tuple[str, ...], labels: list[str], seed: int) -> dict[int, list[str]]:
    """Item index -> the defects it gets: one item per defect, distinct items while there are
    enough, lesion items for the mask defects and calipers (a normal image's mask is empty)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDEF]))
    lesion = [int(i) for i in rng.permutation([i for i, lab in enumerate(labels) if lab != "normal"])]
    every = [int(i) for i in rng.permutation(len(labels))]
    out: dict[int, list[str]] = {}
    for d in defects:
        cand = lesion if lesion and (d.startswith("mask_") or d == "calipers") else every
        i = next((i for i in cand if i not in out), cand[0])
        out.setdefault(i, []).append(d)
    return out


def _encode(path: Path, image: np.ndarray, params: list[int] | None = None) -> None:
    ok, buf = cv2.imencode(".png", image, params or [])
    if not ok:
        raise ArtifactError(f"{path}: PNG encoding failed")
    with atomic_write(path, "wb") as f:
        f.write(buf.tobytes())


def burn_in(img: np.ndarray, masks: list[np.ndarray], kind: str, rng: np.random.Generator) -> np.ndarray:
    """Calipers (two '+' and a dotted line across the lesion), cross markers or text, in white."""
    img = img.copy()
    h, w = img.shape[:2]
    s = max(2, w // 40)
    if kind == "calipers":
        m = masks[0] if masks and masks[0].any() else None
        rows, cols = np.nonzero(m) if m is not None else ([h // 2], [w // 3, 2 * w // 3])
        r = int(np.mean(rows))
        p, q = (int(np.min(cols)), r), (int(np.max(cols)), r)
        for x in range(p[0], q[0], 2 * s):
            cv2.circle(img, (x, r), max(1, s // 3), 255, -1)
        for c in (p, q):
            cv2.drawMarker(img, c, 255, cv2.MARKER_CROSS, 2 * s + 1, 1)
    elif kind == "markers":
        for _ in range(int(rng.integers(2, 5))):
            c = (int(rng.integers(s, w - s)), int(rng.integers(s, h - s)))
            cv2.drawMarker(img, c, 255, cv2.MARKER_TILTED_CROSS if rng.random() < 0.5 else cv2.MARKER_CROSS,
                           2 * s + 1, 1)
    else:
        scale = max(0.25, w / 400)
        cv2.putText(img, "L BREAST 2:00", (2, max(8, h // 12)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1)
        cv2.putText(img, "4.0cm", (w - int(60 * scale) - 2, h - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1)
    return img


def write_item(folder: Path, stem: str, img: np.ndarray, masks: list[np.ndarray], defects: list[str],
               rng: np.random.Generator) -> list[dict]:
    """Write one BUSI item (image + masks) with ``defects``; return one record per defect:
    ``{"defect", "bad", "files"}``, files relative to the phantom root; for a bad defect,
    the one file a loader names when it refuses or skips the item."""
    h, w = img.shape
    mask_imgs = [m.astype(np.uint8) * 255 for m in masks]
    names = [f"{stem}_mask.png" if j == 0 else f"{stem}_mask_{j}.png" for j in range(len(mask_imgs))]
    files: dict[str, list[str]] = {d: [] for d in defects}
    for d in ("calipers", "markers", "text"):
        if d in defects:
            img = burn_in(img, masks, d, rng)
            files[d].append(f"{stem}.png")
    out_img = img
    if "size_mismatch" in defects:  # the publisher resized the image; the masks kept the old size
        nw, nh = max(16, int(w * rng.uniform(0.7, 0.9))), max(16, int(h * rng.uniform(0.75, 0.95)))
        out_img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        files["size_mismatch"].append(names[0])  # the loaders name the first mask that does not fit
    if "rgb_image" in defects:
        out_img = cv2.cvtColor(out_img, cv2.COLOR_GRAY2BGR)
        files["rgb_image"].append(f"{stem}.png")
    write_png(folder / f"{stem}.png", out_img)
    if "truncated" in defects:
        data = (folder / f"{stem}.png").read_bytes()
        with atomic_write(folder / f"{stem}.png", "wb") as f:
            f.write(data[: len(data) // 2])
        files["truncated"].append(f"{stem}.png")
    for j, (name, m) in enumerate(zip(names, mask_imgs)):
        if "missing_mask" in defects:  # no mask at all: the loaders name the image
            files["missing_mask"][:] = [f"{stem}.png"]
            continue
        path = folder / name
        if "mask_1bit" in defects:
            _encode(path, m, [cv2.IMWRITE_PNG_BILEVEL, 1])
            files["mask_1bit"].append(name)
        elif "mask_rgb" in defects:  # a coloured mask (stored BGR): pure red
            _encode(path, np.dstack([np.zeros_like(m), np.zeros_like(m), m]))
            files["mask_rgb"].append(name)
        elif "mask_rgba" in defects:  # white everywhere, the mask in the alpha channel
            _encode(path, np.dstack([np.full_like(m, 255)] * 3 + [m]))
            files["mask_rgba"].append(name)
        elif "mask_antialiased" in defects:  # smooth edges: grey levels across the border
            _encode(path, cv2.GaussianBlur(m, (0, 0), 1.2))
            files["mask_antialiased"].append(name)
        else:
            write_png(path, m)
    if "stray_mask" in defects:  # an extra lesion mask the publisher did not resize
        k = len(mask_imgs)
        extra = np.zeros((h + 7, w + 11), np.uint8)
        cv2.circle(extra, (w // 2, h // 2), max(2, w // 10), 255, -1)
        write_png(folder / f"{stem}_mask_{k}.png", extra)
        files["stray_mask"].append(f"{stem}_mask_{k}.png")
    if "orphan_mask" in defects:  # a mask whose image is not there
        write_png(folder / f"{stem} orphan_mask.png", mask_imgs[0] if mask_imgs else np.zeros((h, w), np.uint8))
        files["orphan_mask"].append(f"{stem} orphan_mask.png")
    return [{"defect": d, "bad": d in BAD, "files": [f"{folder.name}/{f}" for f in files[d]]} for d in defects]
