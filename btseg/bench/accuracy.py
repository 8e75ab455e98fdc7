"""Accuracy of an artifact through the real runtime path, on a data set's test split.

Each test image goes through ``Segmenter.segment`` at its original size (preprocessing,
inference, sigmoid/threshold, resize back, post-processing: exactly what a cart runs) and
the returned mask is scored against the original-size ground truth with
:class:`btseg.metrics.MetricAccumulator` (Dice, IoU, precision, recall, HD95 in pixels;
mean, std and per class).

Which images: the ``test`` part of ``splits.json`` next to the packages (what the training
run held out) when there is one, else :func:`btseg.data.make_splits` with its default seed
on benign + malignant images.  :func:`load_test_set` says which it used.

Example::

    >>> test = load_test_set("data/busi", packages=["runs/demo/student"])   # doctest: +SKIP
    >>> evaluate(segmenter, test)["overall"]["dice"]["mean"]                # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from btseg.errors import DataError
from btseg.runtime.score import Truth, presence_counts, score

# what the report shows per row (HD95 in pixels of the original image)
HEADLINE = ("dice", "iou", "precision", "recall", "hd95")


@dataclass
class TestSet:
    """Decoded test images and masks, loaded once and shared by every row."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    labels: list[str]
    ids: list[str]
    spacings: list[Any]
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)


def load_test_set(data_root: str | Path, packages: Iterable[str | Path] = (), splits_file: str | Path | None = None,
                  part: str = "test", limit: int | None = None, skip_bad: bool = False) -> TestSet:
    """The test split of the data set at ``data_root``, decoded.

    ``part="all"`` takes every image (the bundled samples, or a set held out elsewhere);
    ``limit`` keeps the first N (quick runs).  Bad items refuse the data set, every one
    named; with ``skip_bad`` they are left out, named once, and listed in ``source``.

    Raises:
        DataError: the data set cannot be opened, or the test split is empty.
    """
    from btseg.data import make_splits, open_dataset
    from btseg.data.splits import Splits, find_splits

    splits_path = Path(splits_file) if splits_file else find_splits(packages)
    if part == "all":
        test = ds = open_dataset(data_root, include_normal=True, skip_bad=skip_bad, verify=True)
        source = {"splits": "all images"}
    elif splits_path is not None:
        # open everything: the split file decides which images (normal ones included if it says so)
        ds = open_dataset(data_root, include_normal=True, skip_bad=skip_bad, verify=True)
        test = Splits.load(splits_path).select(ds, "test")
        source = {"splits": str(splits_path)}
    else:
        ds = open_dataset(data_root, include_normal=False, skip_bad=skip_bad, verify=True)
        splits = make_splits(ds)
        test = splits.select(ds, "test")
        source = {"splits": f"make_splits(seed={splits.seed}, test={splits.fractions['test']}) on benign+malignant"}
    if len(test) == 0:
        raise DataError(f"{data_root}: the test split is empty ({source['splits']})")
    if ds.skipped:
        source["skipped"] = ds.skipped_records()
    samples = list(test)[: limit or None]
    source.update(data=str(data_root), n=len(samples),
                  per_class={lab: sum(s.label == lab for s in samples) for lab in sorted({s.label for s in samples})})
    return TestSet(images=[s.image for s in samples], masks=[s.mask for s in samples], labels=[s.label for s in samples],
                   ids=[s.id for s in samples], spacings=[s.spacing_mm for s in samples], source=source)


def evaluate(segmenter: Any, test: TestSet, distances: bool = True) -> dict[str, Any]:
    """Score ``segmenter.segment`` on every test image with :func:`btseg.runtime.score.score`.

    Returns ``MetricAccumulator.summary()`` (``overall`` and ``per_class``, each metric as
    mean/std/n_valid/n) plus ``n`` and ``presence`` (the runtime's "no lesion" decision
    counted per image, :func:`btseg.runtime.score.presence_counts`).  HD95 is in pixels:
    spacings are not used, so that rows from data sets with and without spacing stay
    comparable.
    """
    truths = [Truth(m, lab, sid) for m, lab, sid in zip(test.masks, test.labels, test.ids)]
    acc = score((segmenter.segment(im) for im in test.images), truths, distances, use_spacing=False)
    out = acc.summary()
    out["n"] = len(test)
    out["presence"] = presence_counts(acc)
    return out


# report keys: "precision" there would collide with the artifact's numeric precision (fp32/int8)
KEYS = {"dice": "dice", "iou": "iou", "precision": "prec", "recall": "recall", "hd95": "hd95"}


def headline(summary: dict[str, Any]) -> dict[str, float]:
    """``{"dice": mean, "dice_std": std, "prec": ..., ...}`` for the report's columns
    (metric precision is ``prec``; per-class Dice is ``dice_<label>``; the presence
    decision: ``lesion_sensitivity`` with ``lesion_detected_k`` of ``lesion_n``, and
    ``normal_false_lesion`` (rate) with ``normal_false_lesion_k`` of ``_n``)."""
    out: dict[str, float] = {}
    for k in HEADLINE:
        m = summary.get("overall", {}).get(k)
        if m:
            out[KEYS[k]], out[f"{KEYS[k]}_std"] = m["mean"], m["std"]
    for label, metrics in summary.get("per_class", {}).items():
        out[f"dice_{label}"] = metrics["dice"]["mean"]
    pres = summary.get("presence")
    if pres:
        les, nor = pres["lesion"], pres["normal"]
        out["lesion_sensitivity"] = les["sensitivity"] if les["n"] else None
        out["normal_false_lesion"] = nor["rate"] if nor["n"] else None
        out["normal_false_lesion_k"], out["normal_false_lesion_n"] = nor["flagged"], nor["n"]
        out["lesion_detected_k"], out["lesion_n"] = les["detected"], les["n"]
    return out
