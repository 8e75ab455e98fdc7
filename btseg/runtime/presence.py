"""The package's "no lesion" decision: is there a lesion in this image at all?

A segmentation network trained on lesion images draws *something* on many normal scans
(a fat lobule, a duct, a shadow).  The decision is made on the thresholded, cleaned-up
mask's 8-connected components, at the image's own size, from the package's
``postprocess.presence`` spec in ``model.json`` (validated by
:func:`btseg.schema.check_presence`, the one home of its fields and ranges)::

    {"score": "peak", "min_area_frac": 0.002, "threshold": 0.93,
     "target_sensitivity": 0.95, "calibration": {...}}

1. components smaller than ``min_area_frac`` of the image's pixels are dropped;
2. each remaining component gets a statistic ``score``: ``peak`` (its highest
   probability), ``mean`` (mean probability), ``mass`` (sum of probabilities / image
   pixels) or ``area`` (pixels / image pixels);
3. the image's **presence score** is the largest of them (0.0 when none remains);
4. a lesion is present when that score is >= ``threshold``; otherwise the mask is
   emptied and the result says "no lesion".

``btseg.distill.calibrate`` chooses ``score``, ``min_area_frac`` and ``threshold`` on the
validation split at training time (docs/distill.md).  A package without a presence spec
(every package made before it existed) is not gated: a lesion is present exactly when the
mask is not empty, and the presence score is the mask's peak probability.

Every backend's output goes through :func:`btseg.runtime.postprocess.postprocess`, which
calls :func:`decide`, so torch, ONNX Runtime, OpenVINO and TensorRT decide identically
given the same probabilities.

Example::

    >>> import numpy as np
    >>> prob = np.zeros((100, 100), np.float32); prob[10:20, 10:20] = 0.7
    >>> spec = PresenceSpec(score="peak", min_area_frac=0.0, threshold=0.9)
    >>> present, score, mask = decide(prob, prob >= 0.5, spec)
    >>> present, round(score, 2), int(mask.sum())
    (False, 0.7, 0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import cv2
import numpy as np

from btseg.layout import CONFIG
from btseg.schema import PRESENCE_SCORES, check_presence


@dataclass(frozen=True)
class Components:
    """The 8-connected components of a mask: per component, its statistics (arrays of
    equal length), plus the label image (0 = background, component ``i`` has label ``i+1``)."""

    labels: np.ndarray
    area_frac: np.ndarray
    peak: np.ndarray
    mean: np.ndarray
    mass: np.ndarray

    def stat(self, score: str) -> np.ndarray:
        """The per-component statistic named ``score`` (one of :data:`PRESENCE_SCORES`)."""
        return self.area_frac if score == "area" else getattr(self, score)

    def image_score(self, score: str, min_area_frac: float) -> float:
        """Largest ``score`` over the components of at least ``min_area_frac``; 0.0 if none."""
        keep = self.area_frac >= min_area_frac
        return float(self.stat(score)[keep].max()) if keep.any() else 0.0


@dataclass(frozen=True)
class PresenceSpec:
    """``postprocess.presence`` of ``model.json`` (see the module docstring)."""

    score: str = "peak"
    min_area_frac: float = 0.0
    threshold: float = 0.5
    target_sensitivity: float | None = None
    calibration: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, doc: str = CONFIG) -> "PresenceSpec | None":
        """The spec from its dict (validated; SchemaError naming the field); None for None."""
        if d is None:
            return None
        d = check_presence(dict(d), doc)
        return cls(score=d["score"], min_area_frac=float(d["min_area_frac"]), threshold=float(d["threshold"]),
                   target_sensitivity=d.get("target_sensitivity"), calibration=dict(d.get("calibration") or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def components(prob: np.ndarray, mask: np.ndarray) -> Components:
    """The components of ``mask`` with their area fraction, peak, mean and mass of ``prob``."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    total = float(mask.size) or 1.0
    if n <= 1:
        empty = np.zeros(0, np.float64)
        return Components(labels, empty, empty, empty, empty)
    lab = labels[mask.astype(bool)]
    p = prob[mask.astype(bool)].astype(np.float64)
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    sums = np.bincount(lab, weights=p, minlength=n)[1:]
    peak = np.zeros(n, np.float64)
    np.maximum.at(peak, lab, p)
    return Components(labels, area / total, peak[1:], sums / np.maximum(area, 1), sums / total)


def decide(prob: np.ndarray, mask: np.ndarray,
           spec: PresenceSpec | None) -> tuple[bool, float, np.ndarray]:
    """``(lesion_present, presence score, mask)`` for one image (see the module docstring).

    Without a spec the mask is returned unchanged, present iff not empty, score its peak.
    With one, components below ``min_area_frac`` are removed and, when the score is under
    ``threshold``, the mask is emptied.
    """
    comps = components(prob, mask)
    if spec is None:
        score = comps.image_score("peak", 0.0)
        return bool(comps.area_frac.size), score, mask
    score = comps.image_score(spec.score, spec.min_area_frac)
    small = np.flatnonzero(comps.area_frac < spec.min_area_frac) + 1
    kept = mask & ~np.isin(comps.labels, small) if small.size else mask
    present = bool(kept.any()) and score >= spec.threshold
    return present, score, kept if present else np.zeros_like(mask, dtype=bool)


__all__ = ["Components", "PRESENCE_SCORES", "PresenceSpec", "components", "decide"]
