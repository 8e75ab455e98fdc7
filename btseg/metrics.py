"""Segmentation metrics: one implementation, used by training, export verification and bench.

Every metric is a pure function of two HxW boolean masks, plus :class:`MetricAccumulator`,
which collects per-image values over a data set and reduces them (overall and per class).

Empty-mask conventions (MONAI-style: NaN means *undefined* and is excluded from means;
every reduction reports how many values were valid):

===================  ===========================  ==============================
metric               both masks empty             exactly one mask empty
===================  ===========================  ==============================
dice, iou            1.0 (a correct "no lesion")  0.0
precision            NaN (no predicted pixel)     0.0 if pred has pixels, NaN else
recall               NaN (no lesion pixel)        0.0 if gt has pixels, NaN else
specificity          1.0                          by definition (TN / (TN + FP))
hd95, assd           0.0                          the image diagonal (``empty_distance``)
===================  ===========================  ==============================

Charging a missed or hallucinated lesion the image diagonal (in pixels, or mm with a
spacing) keeps HD95 honest: a model cannot improve its HD95 by predicting nothing, which
it could if one-empty cases were dropped as NaN.  Pass ``empty_distance="nan"`` to drop them.

Example::

    >>> import numpy as np
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> round(dice(a, a), 3), hd95(a, a)
    (1.0, 0.0)
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage

METRICS = ("dice", "iou", "precision", "recall", "specificity", "hd95", "assd")


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    return pred, gt


def confusion(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) pixel counts."""
    pred, gt = _check(pred, gt)
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred)) - tp
    fn = int(np.count_nonzero(gt)) - tp
    return tp, fp, fn, pred.size - tp - fp - fn


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice = 2|A∩B| / (|A|+|B|); 1.0 when both are empty."""
    tp, fp, fn, _ = confusion(pred, gt)
    den = 2 * tp + fp + fn
    return 1.0 if den == 0 else 2 * tp / den


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard = |A∩B| / |A∪B|; 1.0 when both are empty."""
    tp, fp, fn, _ = confusion(pred, gt)
    den = tp + fp + fn
    return 1.0 if den == 0 else tp / den


def precision(pred: np.ndarray, gt: np.ndarray) -> float:
    tp, fp, _, _ = confusion(pred, gt)
    return math.nan if tp + fp == 0 else tp / (tp + fp)


def recall(pred: np.ndarray, gt: np.ndarray) -> float:
    tp, _, fn, _ = confusion(pred, gt)
    return math.nan if tp + fn == 0 else tp / (tp + fn)


def specificity(pred: np.ndarray, gt: np.ndarray) -> float:
    _, fp, _, tn = confusion(pred, gt)
    return 1.0 if tn + fp == 0 else tn / (tn + fp)


def _surface_distances(a: np.ndarray, b: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distances from every boundary pixel of ``a`` to the nearest boundary pixel of ``b``."""
    border_a = a ^ ndimage.binary_erosion(a, border_value=0)
    border_b = b ^ ndimage.binary_erosion(b, border_value=0)
    dist_to_b = ndimage.distance_transform_edt(~border_b, sampling=spacing)
    return dist_to_b[border_a]


def _distances(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None,
               empty_distance: str) -> tuple[np.ndarray, np.ndarray] | float:
    pred, gt = _check(pred, gt)
    sp = tuple(spacing) if spacing is not None else (1.0, 1.0)
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        if empty_distance == "nan":
            return math.nan
        return float(math.hypot(pred.shape[0] * sp[0], pred.shape[1] * sp[1]))
    return _surface_distances(pred, gt, sp), _surface_distances(gt, pred, sp)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None,
         empty_distance: str = "diagonal") -> float:
    """95th-percentile symmetric Hausdorff distance, in pixels or in mm given ``spacing``
    (row, col) in mm.  See the module docstring for empty masks."""
    d = _distances(pred, gt, spacing, empty_distance)
    if isinstance(d, float):
        return d
    return float(max(np.percentile(d[0], 95), np.percentile(d[1], 95)))


def assd(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None,
         empty_distance: str = "diagonal") -> float:
    """Average symmetric surface distance (pixels, or mm given ``spacing``)."""
    d = _distances(pred, gt, spacing, empty_distance)
    if isinstance(d, float):
        return d
    return float(np.concatenate(d).mean())


def compute_all(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | None = None,
                distances: bool = True) -> dict[str, float]:
    """Every metric for one image (``distances=False`` skips HD95/ASSD, the slow ones)."""
    out = {"dice": dice(pred, gt), "iou": iou(pred, gt), "precision": precision(pred, gt),
           "recall": recall(pred, gt), "specificity": specificity(pred, gt)}
    if distances:
        out["hd95"] = hd95(pred, gt, spacing)
        out["assd"] = assd(pred, gt, spacing)
    return out


def reduce(values: Iterable[float]) -> dict[str, float]:
    """mean/std over the valid (non-NaN) values, with how many were valid and in all."""
    v = np.asarray(list(values), dtype=np.float64)
    ok = v[~np.isnan(v)]
    return {"mean": float(ok.mean()) if ok.size else math.nan,
            "std": float(ok.std()) if ok.size else math.nan,
            "n_valid": int(ok.size), "n": int(v.size)}


def presence_summary(present: Iterable[bool], has_lesion: Iterable[bool]) -> dict[str, dict[str, float | int]]:
    """Image-level "lesion or no lesion" counts: ``lesion`` (images whose ground truth has a
    lesion) ``{"detected": k, "n": n, "sensitivity": k/n}`` and ``normal`` (empty ground
    truth) ``{"flagged": k, "n": n, "rate": k/n}``; a rate is NaN when its ``n`` is 0.

    >>> presence_summary([True, False, True], [True, True, False])["normal"]
    {'flagged': 1, 'n': 1, 'rate': 1.0}
    """
    pairs = [(bool(p), bool(g)) for p, g in zip(present, has_lesion)]
    det = sum(p for p, g in pairs if g)
    n_les = sum(g for _, g in pairs)
    flag = sum(p for p, g in pairs if not g)
    n_norm = len(pairs) - n_les
    return {"lesion": {"detected": det, "n": n_les, "sensitivity": det / n_les if n_les else math.nan},
            "normal": {"flagged": flag, "n": n_norm, "rate": flag / n_norm if n_norm else math.nan}}


class MetricAccumulator:
    """Collects per-image metrics over a data set; reduces overall and per class.

    Example::

        >>> acc = MetricAccumulator(distances=False)
        >>> m = np.ones((4, 4), bool)
        >>> acc.add(m, m, label="benign")
        >>> acc.summary()["overall"]["dice"]["mean"]
        1.0
    """

    def __init__(self, distances: bool = True) -> None:
        self.distances = distances
        self.rows: list[dict[str, float | str]] = []

    def add(self, pred: np.ndarray, gt: np.ndarray, label: str = "all", spacing: Sequence[float] | None = None,
            sample_id: str = "") -> dict[str, float]:
        m = compute_all(pred, gt, spacing, self.distances)
        self.rows.append({"id": sample_id, "label": label, **m})
        return m

    def summary(self) -> dict[str, dict]:
        """``{"overall": {metric: reduce(...)}, "per_class": {label: {metric: ...}}}``."""
        names = [k for k in METRICS if self.rows and k in self.rows[0]]
        by_label: dict[str, list[dict]] = defaultdict(list)
        for r in self.rows:
            by_label[str(r["label"])].append(r)
        return {"overall": {k: reduce(r[k] for r in self.rows) for k in names},
                "per_class": {lab: {k: reduce(r[k] for r in rows) for k in names}
                              for lab, rows in sorted(by_label.items())}}

    def mean(self, metric: str = "dice") -> float:
        return reduce(r[metric] for r in self.rows)["mean"]
