"""Synthetic cart screen captures: a phantom B-mode image in a sector or rectangle on a dark
frame with burned-in text, a depth ruler with ticks, a grey/colour bar, a logo and calipers.

``make_capture(seed)`` returns the RGB screen, the true image mask and a description, so
that ``--roi auto`` (btseg.runtime.roi_auto) can be scored against the truth, and region /
roi tests can place a known image at a known place.  Used by tests/runtime and by
benchmarks/roi_auto.py.
"""

from __future__ import annotations

import cv2
import numpy as np

SCREENS = [(640, 480), (800, 600), (1024, 768), (720, 576)]
FONT = cv2.FONT_HERSHEY_SIMPLEX
WORDS = ["PHILIPS", "GE", "L12-5", "C5-1", "Gen", "Breast", "MI 1.1", "TIB 0.2", "28Hz", "11cm", "2D", "HGen",
         "Gn 60", "C 61", "3/3/4", "Dist 1.06 cm", "Lt BREAST 2:00", "ID 0012345", "25/05/2026", "14:03:22"]


def phantom(seed: int, w: int, h: int) -> np.ndarray:
    """A phantom B-mode image resized to w x h (uint8)."""
    from btseg.data.phantom import sample

    img, _ = sample(seed, 0, "benign" if seed % 2 else "malignant", 192)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)


def sector_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A convex-probe fan filling an h x w box: apex above the box, inner and outer arcs."""
    a = h * rng.uniform(0.1, 0.4)  # the apex lies this far above the box
    outer = h + a
    half = min(np.deg2rad(rng.uniform(28, 40)), np.arcsin(min(1.0, (w / 2) / outer)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - w / 2, yy + a
    r, ang = np.hypot(dx, dy), np.arctan2(dx, dy)
    return (np.abs(ang) <= half) & (r >= a + 1) & (r <= outer)


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float, color, thick: int = 1) -> None:
    cv2.putText(img, s, org, FONT, scale, color, thick, cv2.LINE_AA)


def _furniture(screen: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> None:
    """Header bar, side panel text, ruler, bar, logo: everything a screen has but the image."""
    H, W = screen.shape[:2]
    x, y, w, h = box
    bar_h = max(24, y - 8)
    screen[:bar_h] = rng.integers(20, 70, 3)  # header bar colour
    for i, col in enumerate(range(80, W - 120, max(80, W // 6))):
        _text(screen, str(rng.choice(WORDS)), (col, int(bar_h * 0.6)), rng.uniform(0.45, 0.8), (235, 235, 235))
    cv2.circle(screen, (22, bar_h // 2), max(8, bar_h // 3), (40, 110, 200), -1)  # logo
    _text(screen, "P", (15, bar_h // 2 + 6), 0.6, (255, 255, 255), 2)
    for i in range(int(rng.integers(4, 10))):  # settings panel on the left
        _text(screen, str(rng.choice(WORDS)), (6, bar_h + 28 + 22 * i), rng.uniform(0.4, 0.6), (220, 220, 220))
    rx = min(W - 60, x + w + int(rng.integers(4, 16)))  # depth ruler with ticks and numbers
    cv2.line(screen, (rx, y), (rx, y + h), (200, 200, 200), 1)
    step = int(rng.integers(15, 40))
    for k, ty in enumerate(range(y, y + h, step)):
        cv2.line(screen, (rx, ty), (rx + (8 if k % 2 == 0 else 4), ty), (200, 200, 200), 1)
        if k % 4 == 0:
            _text(screen, str(k // 2), (rx + 10, ty + 5), 0.4, (200, 200, 200))
    bx, bh = W - int(rng.integers(18, 40)), int(rng.integers(100, max(101, H // 2)))
    grad = np.linspace(255, 0, bh)[:, None]
    if rng.random() < 0.5:  # grey bar
        screen[y:y + bh, bx:bx + 10] = grad[..., None].astype(np.uint8)
    else:  # colour (flow) bar
        screen[y:y + bh, bx:bx + 10, 0] = grad.astype(np.uint8)
        screen[y:y + bh, bx:bx + 10, 2] = grad[::-1].astype(np.uint8)
    _text(screen, str(rng.choice(WORDS)), (x + 10, y + h + 22) if y + h + 30 < H else (x + 10, H - 6), 0.5,
          (230, 230, 230))


def make_capture(seed: int, shape: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(screen HxWx3 RGB uint8, true image mask HxW bool, description) for one seed."""
    rng = np.random.default_rng(seed)
    W, H = SCREENS[seed % len(SCREENS)]
    shape = shape or ("sector" if rng.random() < 0.5 else "rect")
    h = int(H * rng.uniform(0.55, 0.75))
    w = int(h * rng.uniform(0.9, 1.4)) if shape == "sector" else int(h * rng.uniform(0.7, 1.2))
    w = min(w, W - 240)
    x, y = int(rng.integers(120, W - w - 100)), int(rng.integers(48, H - h - 30))
    screen = np.zeros((H, W, 3), np.uint8) + np.uint8(rng.integers(0, 18))
    _furniture(screen, (x, y, w, h), rng)
    inside = sector_mask(h, w, rng) if shape == "sector" else np.ones((h, w), bool)
    img = phantom(seed, w, h)
    roi = screen[y:y + h, x:x + w]
    roi[inside] = img[inside][:, None]
    for _ in range(int(rng.integers(0, 3))):  # calipers inside the image
        cx, cy = int(x + w * rng.uniform(0.3, 0.7)), int(y + h * rng.uniform(0.3, 0.7))
        cv2.drawMarker(screen, (cx, cy), (255, 255, 255), cv2.MARKER_CROSS, 10, 1)
    noise = rng.uniform(0, 3)
    if noise > 0.5:  # an analogue frame grabber's noise
        screen = np.clip(screen + rng.normal(0, noise, screen.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((H, W), bool)
    truth[y:y + h, x:x + w] = inside
    return screen, truth, {"seed": seed, "shape": shape, "box": (x, y, w, h), "screen": (W, H),
                           "noise": round(float(noise), 2)}
