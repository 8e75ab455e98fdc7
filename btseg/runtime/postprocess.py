"""Logits -> a :class:`Segmentation` at the input image's own size.

One implementation, used by :class:`btseg.runtime.Segmenter` and by export verification
(``btseg.export.verify``), so a verified artifact is judged on the masks a cart will show.

Steps (the design's output contract):

1. ``prob = sigmoid(logits)`` at the network size (numerically stable, float32);
2. ``prob`` resized back to the image's (height, width) with
   :func:`btseg.preprocess.resize_prob` (bilinear);
3. ``mask = prob >= threshold``;
4. optional clean-up from the package's ``postprocess`` spec: ``largest_component``
   (keep the largest 8-connected component) then ``fill_holes``;
5. the package's presence decision (``postprocess.presence``, :mod:`btseg.runtime.presence`):
   components below its minimum area are dropped and, when the presence score is under its
   threshold, the mask is emptied ("no lesion": ``lesion_present`` False);
6. measurements: ``area_px``, ``area_mm2`` (when the pixel spacing is known), ``bbox``
   (x, y, w, h of the whole mask), ``contour`` (largest external contour, Nx2 x/y),
   ``confidence`` (mean probability inside the mask; ``1 - max(prob)`` when the mask is
   empty, i.e. how sure the model is that there is no lesion).

Example::

    >>> import numpy as np
    >>> logits = np.full((64, 64), -8.0, np.float32); logits[20:40, 10:30] = 8.0
    >>> seg = postprocess(logits, (128, 128), threshold=0.5, spacing_mm=0.1)
    >>> seg.area_px, seg.bbox, round(seg.area_mm2, 1)
    (1600, (20, 40, 40, 40), 16.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

from btseg.contract import DEFAULT_THRESHOLD
from btseg.errors import DataError, OutputError
from btseg.preprocess import resize_prob
from btseg.runtime.presence import PresenceSpec, decide


@dataclass
class Segmentation:
    """The result of segmenting one image, at that image's own size.

    Attributes:
        mask: HxW bool lesion mask.
        prob: HxW float32 lesion probability.
        area_px: number of mask pixels.
        area_mm2: mask area in mm^2, or None when the pixel spacing is unknown.
        bbox: (x, y, w, h) of the mask in pixels, or None for an empty mask.
        contour: Nx2 int32 (x, y) points of the largest external contour (0x2 if empty).
        confidence: mean probability inside the mask, or ``1 - max(prob)`` if empty.
        spacing_mm: (row, col) pixel spacing used for ``area_mm2``, or None.
        lesion_present: the package's "lesion or no lesion" decision (False: the mask is empty).
        presence: the presence score the decision thresholds (:mod:`btseg.runtime.presence`).
        timings: preprocess_ms, infer_ms, postprocess_ms, total_ms (filled by the Segmenter).
    """

    mask: np.ndarray
    prob: np.ndarray
    area_px: int
    area_mm2: float | None
    bbox: tuple[int, int, int, int] | None
    contour: np.ndarray
    confidence: float
    spacing_mm: tuple[float, float] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    lesion_present: bool = False
    presence: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """JSON-able summary (no arrays except the contour as a list)."""
        return {"lesion_present": bool(self.lesion_present), "presence": round(float(self.presence), 6),
                "area_px": self.area_px, "area_mm2": self.area_mm2,
                "bbox": list(self.bbox) if self.bbox else None, "confidence": round(self.confidence, 6),
                "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None,
                "contour_points": int(len(self.contour)), "height": int(self.mask.shape[0]),
                "width": int(self.mask.shape[1]),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function in float32 (no overflow warnings)."""
    x = np.asarray(x, dtype=np.float32)
    return (0.5 * (np.tanh(0.5 * x) + 1.0)).astype(np.float32, copy=False)


# the plausible pixel spacing, mm per pixel: 0.1 um (beyond any ultrasound) .. 10 mm (a
# 100-px image 1 m wide); outside it the number is a unit or encoding error, and areas
# from it are meaningless (1e200 overflowed to Infinity, 1e-300 underflowed to 0.0)
SPACING_RANGE_MM = (1e-4, 10.0)


def normalize_spacing(spacing_mm: float | tuple[float, float] | None) -> tuple[float, float] | None:
    """``0.1`` or ``(0.1, 0.12)`` (row, col mm per pixel) -> (row, col); None stays None.
    DataError unless finite and within :data:`SPACING_RANGE_MM`."""
    if spacing_mm is None:
        return None
    try:
        s = np.atleast_1d(np.asarray(spacing_mm, dtype=np.float64)).ravel()
    except (TypeError, ValueError) as e:
        raise DataError(f"spacing_mm {spacing_mm!r}: expected a number or (row_mm, col_mm)") from e
    if s.size == 1:
        s = np.repeat(s, 2)
    lo, hi = SPACING_RANGE_MM
    if s.size != 2 or not np.isfinite(s).all() or (s < lo).any() or (s > hi).any():
        raise DataError(f"spacing_mm {spacing_mm!r}: expected finite mm per pixel in [{lo:g}, {hi:g}] "
                        "(one number or (row_mm, col_mm))")
    return float(s[0]), float(s[1])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected component of a bool mask."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == keep


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border."""
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = mask
    flood = padded.copy()
    cv2.floodFill(flood, np.zeros((h + 4, w + 4), np.uint8), (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def measure(mask: np.ndarray) -> tuple[int, tuple[int, int, int, int] | None, np.ndarray]:
    """area_px, bbox (x, y, w, h) or None, largest external contour (Nx2 int32)."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0, None, np.zeros((0, 2), np.int32)
    m8 = mask.astype(np.uint8)
    x, y, w, h = cv2.boundingRect(m8)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    biggest = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
    return area, (int(x), int(y), int(w), int(h)), biggest.reshape(-1, 2).astype(np.int32)


def postprocess(logits: np.ndarray, image_size: tuple[int, int], threshold: float = DEFAULT_THRESHOLD,
                spec: Mapping[str, Any] | None = None,
                spacing_mm: float | tuple[float, float] | None = None) -> Segmentation:
    """One logit map -> :class:`Segmentation` at ``image_size`` (height, width).

    Args:
        logits: HxW, 1xHxW or 1x1xHxW float logits at the network's size.
        image_size: (height, width) of the original image.
        threshold: probability threshold (the package's ``threshold``).
        spec: the package's ``postprocess`` dict: ``largest_component``, ``fill_holes``,
            ``presence`` (the "no lesion" decision; absent: no gating).
        spacing_mm: pixel spacing of the *original* image, for ``area_mm2``.

    Raises:
        OutputError: any logit is NaN or inf (every backend's output goes through here).
    """
    logits = np.asarray(logits)
    while logits.ndim > 2 and logits.shape[0] == 1:
        logits = logits[0]
    if logits.ndim != 2:
        raise DataError(f"logits: shape {logits.shape}; expected one HxW map")
    finite = np.isfinite(logits)
    if not finite.all():  # a broken artifact or weights: refuse, never an empty mask
        raise OutputError(f"logits: {logits.size - int(np.count_nonzero(finite))} of {logits.size} values are "
                          "NaN or inf; the model's output cannot be trusted, no mask is given")
    prob = resize_prob(sigmoid(logits), (int(image_size[0]), int(image_size[1])))
    return finish(prob, threshold, spec, spacing_mm)


def finish(prob: np.ndarray, threshold: float = 0.5, spec: Mapping[str, Any] | None = None,
           spacing_mm: float | tuple[float, float] | None = None) -> Segmentation:
    """Steps 3-6 on a probability map already at the image's size (what :func:`postprocess`
    does after the sigmoid and the resize; training evaluation calls it on its own maps)."""
    spec = spec or {}
    spacing = normalize_spacing(spacing_mm)
    mask = prob >= threshold
    if spec.get("largest_component"):
        mask = largest_component(mask)
    if spec.get("fill_holes"):
        mask = fill_holes(mask)
    present, presence, mask = decide(prob, mask, PresenceSpec.from_dict(spec.get("presence")))
    area, bbox, contour = measure(mask)
    confidence = float(prob[mask].mean()) if area else float(1.0 - prob.max())
    area_mm2 = area * spacing[0] * spacing[1] if spacing else None
    return Segmentation(mask=mask, prob=prob, area_px=area, area_mm2=area_mm2, bbox=bbox, contour=contour,
                        confidence=confidence, spacing_mm=spacing, lesion_present=present, presence=presence)


@dataclass(frozen=True)
class PostProcess:
    """A package's whole decision from logits to a mask, read from its ``model.json`` once.

    The one place the post-processing parameters are taken from a package's config: the
    :class:`~btseg.runtime.Segmenter`, export verification (:mod:`btseg.export.verify`)
    and every accuracy number (:func:`btseg.runtime.score.score`, used by training
    evaluation and the bench) call it, so a step added here (a clean-up, a presence
    decision) reaches all of them at once.

    Example::

        >>> import numpy as np
        >>> post = PostProcess(threshold=0.5, spec={"fill_holes": True})
        >>> logits = np.full((8, 8), 8.0, np.float32); logits[3:5, 3:5] = -8.0
        >>> int(post(logits, (8, 8)).mask.sum())
        64
    """

    threshold: float = DEFAULT_THRESHOLD
    spec: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Any) -> "PostProcess":
        """From a :class:`btseg.package.ModelConfig` (its ``threshold`` and ``postprocess``)."""
        return cls(float(config.threshold), dict(config.postprocess or {}))

    def ungated(self) -> "PostProcess":
        """The same steps without the image-level "no lesion" decision: what the map alone
        draws, so a report can show what the decision changed."""
        return PostProcess(self.threshold, {k: v for k, v in self.spec.items() if k != "presence"})

    def __call__(self, logits: np.ndarray, image_size: tuple[int, int],
                 spacing_mm: float | tuple[float, float] | None = None) -> Segmentation:
        """:func:`postprocess` with this package's parameters."""
        return postprocess(logits, image_size, self.threshold, dict(self.spec), spacing_mm)
