"""The one accuracy path: a package's masks scored against ground truth.

Training evaluation (:func:`btseg.distill.evaluate.evaluate_package`, whose numbers go
into ``model.json``), export verification (:mod:`btseg.export.verify`) and the bench
(:mod:`btseg.bench.accuracy`) all score here, and all make their masks with the package's
:class:`~btseg.runtime.postprocess.PostProcess` (threshold, clean-up and whatever else
the package's post-processing decides), so the three report the same numbers for the
same model on the same images.

Example::

    >>> from btseg.runtime.postprocess import PostProcess
    >>> logits = np.full((8, 8), -8.0, np.float32); logits[2:6, 2:6] = 8.0
    >>> gt = logits > 0
    >>> acc = score([PostProcess(0.5)(logits, (8, 8))], [Truth(gt, "benign", "a")], distances=False)
    >>> acc.summary()["overall"]["dice"]["mean"]
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from btseg.errors import DataError
from btseg.metrics import MetricAccumulator, presence_summary
from btseg.runtime.postprocess import Segmentation


@dataclass(frozen=True)
class Truth:
    """One image's ground truth: HxW mask, class label, id, pixel spacing (mm) or None.

    A :class:`btseg.data.Sample` has the same attributes and can be passed instead.
    """

    mask: np.ndarray
    label: str = "all"
    id: str = ""
    spacing_mm: Any = None


def score(segmentations: Iterable[Segmentation | np.ndarray], truths: Iterable[Any], distances: bool = True,
          use_spacing: bool = True) -> MetricAccumulator:
    """Score each segmentation (or bool mask) against its truth, in order.

    Args:
        segmentations: what :class:`PostProcess` (or ``Segmenter.segment``) returned.
        truths: :class:`Truth` objects or anything with ``mask``, ``label``, ``id``,
            ``spacing_mm`` (a data set's samples).
        distances: also HD95/ASSD (the slow ones).
        use_spacing: HD95/ASSD in mm where a spacing is known; False keeps pixels, so
            rows of data sets with and without spacing compare.

    Returns:
        the :class:`~btseg.metrics.MetricAccumulator` (``summary()``, ``rows``); each row
        also holds ``present`` and ``presence`` (the package's "no lesion" decision; for a
        bare mask, present = not empty) and ``has_lesion`` (ground truth not empty), which
        :func:`presence_counts` sums up.

    Raises:
        DataError: a mask's size differs from its ground truth's.
    """
    acc = MetricAccumulator(distances=distances)
    for seg, t in zip(segmentations, truths, strict=True):
        pred = np.asarray(seg.mask if isinstance(seg, Segmentation) else seg).astype(bool)
        gt = np.asarray(t.mask)
        if pred.shape != gt.shape:
            raise DataError(f"{t.id}: a {pred.shape} mask for a {gt.shape} ground truth")
        acc.add(pred, gt, label=t.label, spacing=t.spacing_mm if use_spacing else None, sample_id=t.id)
        seg_ = seg if isinstance(seg, Segmentation) else None
        acc.rows[-1].update(present=bool(seg_.lesion_present) if seg_ else bool(pred.any()),
                            presence=round(float(seg_.presence), 6) if seg_ else float(pred.any()),
                            has_lesion=bool(gt.any()))
    return acc


def presence_counts(acc: MetricAccumulator) -> dict[str, dict[str, float | int]]:
    """Lesion images detected and normal images flagged over :func:`score`'s rows
    (:func:`btseg.metrics.presence_summary`)."""
    return presence_summary((bool(r["present"]) for r in acc.rows), (bool(r["has_lesion"]) for r in acc.rows))

