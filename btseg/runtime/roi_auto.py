"""Find the B-mode image on a screen capture (``roi="auto"``, CLI ``--roi auto``; opt-in).

A frame grabber on a cart returns the whole screen: the B-mode sector or rectangle plus
burned-in text, depth rulers, a grey/colour bar and a logo on a dark background.  Speckle
is *densely* textured everywhere in the image; text and ruler ticks are textured only along
thin strokes; bars and logos are smooth.  So:

1. grey level, and its local standard deviation over a small window (speckle: high);
2. "textured" = local std above a threshold set from the frame's own noise (the median
   local std of the dark background) and an absolute floor;
3. density: the fraction of textured pixels in a larger window, kept where it is high;
4. a morphological opening with a kernel larger than a text line or a ruler removes text,
   ticks and thin bars; the largest connected component is the image;
5. its convex hull (filled) is the region: a sector stays a sector, dark lesions and the
   dark far field inside it are not lost.

The result is the hull mask and its bounding box.  Measured on generated captures:
``benchmarks/roi_auto.py`` (see benchmarks/RESULTS.md).  When nothing large enough is
textured, :class:`DataError` says so: give ``--roi X,Y,W,H`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from btseg.errors import DataError

MIN_FRACTION = 0.04  # the image covers at least this much of the screen
WORK_SIDE = 768  # detection runs on captures scaled so that the short side is at most this (HD screens)


@dataclass
class AutoRoi:
    """A detected image region: ``box`` (x, y, w, h), ``mask`` (h x w bool inside the box),
    ``full`` (the mask at the screen's size) and ``score`` (textured fraction inside)."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    full: np.ndarray
    score: float


def to_gray(image: np.ndarray) -> np.ndarray:
    """Any supported frame -> HxW float32 grey 0..255."""
    img = image[..., :3].mean(axis=2) if image.ndim == 3 and image.shape[2] >= 3 else image.reshape(image.shape[:2])
    img = img.astype(np.float32)
    if image.dtype == np.uint16:
        img /= 257.0
    elif image.dtype.kind == "f" and img.max(initial=0) <= 1.0:
        img *= 255.0
    elif image.dtype == bool:
        img *= 255.0
    return img


def texture_map(gray: np.ndarray, k: int) -> np.ndarray:
    """Local standard deviation over a k x k window."""
    mean = cv2.boxFilter(gray, -1, (k, k), borderType=cv2.BORDER_REFLECT)
    sq = cv2.boxFilter(gray * gray, -1, (k, k), borderType=cv2.BORDER_REFLECT)
    return np.sqrt(np.maximum(sq - mean * mean, 0))


def _odd(n: float) -> int:
    n = max(3, int(round(n)))
    return n if n % 2 else n + 1


def textured_mask(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dense texture after opening, dense texture, textured pixels) of a grey image."""
    side = min(gray.shape)
    std = texture_map(gray, _odd(side / 120))
    saturated = cv2.dilate((gray >= 250).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    noise = float(np.median(std[gray < np.percentile(gray, 20) + 1]))  # the background's own noise
    # a plain B-mode frame has no background: its darkest fifth is speckle too, and 2.5x its
    # local std would call nothing textured; a screen's black background is never that noisy
    # the cap: half the typical texture of the brighter half of the frame (speckle on a screen
    # capture, where the dark half is background; all of it on a plain or upscaled B-mode frame)
    bright = std[gray > np.median(gray)]
    cap = max(3.0, 0.5 * float(np.median(bright))) if bright.size else 3.0
    textured = (std > min(max(3.0, 2.5 * noise), cap)) & ~saturated  # white text is saturated, speckle rarely
    # reflected at the frame's edge: an image that fills the frame is dense up to its border
    density = cv2.boxFilter(textured.astype(np.float32), -1, (_odd(side / 24),) * 2, borderType=cv2.BORDER_REFLECT)
    dense = (density > 0.5).astype(np.uint8)
    k = _odd(side / 12)  # wider than a text line, a ruler or a colour bar
    opened = cv2.morphologyEx(dense, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return opened > 0, dense > 0, textured


def trim(region: np.ndarray, textured: np.ndarray, keep: float = 0.35) -> np.ndarray:
    """Cut rows and columns off the region's edges where little of it is textured (a text
    line or ruler the density step glued onto the image's border)."""
    out = region.copy()
    for axis in (1, 0):
        inside = out.sum(axis=axis)
        frac = (textured & out).sum(axis=axis) / np.maximum(inside, 1)
        good = np.flatnonzero((frac >= keep) & (inside > 0))
        if good.size:
            cut = np.ones(frac.shape, bool)
            cut[good[0]:good[-1] + 1] = False
            if axis == 1:
                out[cut] = False
            else:
                out[:, cut] = False
    return out


def detect_roi(image: np.ndarray, source: str = "image") -> AutoRoi:
    """The largest densely textured region of a screen capture, as its convex hull.

    Raises:
        DataError: nothing textured covers at least ``MIN_FRACTION`` of the image.
    """
    h, w = image.shape[:2]
    if min(h, w) < 32:
        raise DataError(f"{source}: --roi auto needs an image of at least 32x32 px, got {w}x{h}")
    gray = to_gray(image)
    scale = min(1.0, WORK_SIDE / min(h, w))  # the texture statistics need no more pixels than this
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    opened, dense, textured = textured_mask(gray)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(opened.astype(np.uint8), connectivity=8)
    if n < 2:
        raise DataError(f"{source}: --roi auto found no textured (B-mode) region in the {w}x{h} image; "
                        f"give --roi X,Y,W,H")
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    small = trim(_hull(labels == best), textured)
    if not small.any():
        raise DataError(f"{source}: --roi auto found no textured (B-mode) region in the {w}x{h} image; "
                        f"give --roi X,Y,W,H")
    hull = cv2.convexHull(cv2.findNonZero(small.astype(np.uint8))).astype(np.float64)
    full = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(full, np.round((hull + 0.5) / scale - 0.5).astype(np.int32), 1)
    full = full > 0
    if full.sum() < MIN_FRACTION * h * w:
        raise DataError(f"{source}: --roi auto: the largest textured region covers {full.mean():.1%} of the "
                        f"{w}x{h} image (< {MIN_FRACTION:.0%}); give --roi X,Y,W,H")
    x, y, bw, bh = cv2.boundingRect(full.astype(np.uint8))
    score = float(textured[small].mean())
    return AutoRoi((int(x), int(y), int(bw), int(bh)), full[y:y + bh, x:x + bw], full, score)


def _hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex hull of a bool mask's pixels."""
    out = np.zeros(mask.shape, np.uint8)
    cv2.fillConvexPoly(out, cv2.convexHull(cv2.findNonZero(mask.astype(np.uint8))), 1)
    return out > 0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0
