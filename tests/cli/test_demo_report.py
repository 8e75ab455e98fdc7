"""btseg.cli.demo_report.lesion_columns on real btseg.metrics summaries (no training)."""

import numpy as np
import pytest

from btseg.cli.demo_report import lesion_columns
from btseg.metrics import MetricAccumulator


def _mask(r0: int, r1: int) -> np.ndarray:
    m = np.zeros((16, 16), bool)
    m[r0:r1, 4:12] = True
    return m


def test_lesion_dice_weights_by_image_and_normal_false_lesion_rate():
    acc = MetricAccumulator(distances=False)
    gt = _mask(4, 12)
    acc.add(gt, gt, "benign")                     # 1.0
    acc.add(_mask(4, 8), gt, "benign")            # 2*32/(32+64) = 2/3
    acc.add(np.zeros_like(gt), gt, "malignant")   # 0.0
    empty = np.zeros_like(gt)
    acc.add(empty, empty, "normal")               # correct: nothing predicted
    acc.add(_mask(0, 1), empty, "normal")         # a false lesion
    acc.add(empty, empty, "normal")
    acc.add(empty, empty, "normal")
    lesion, false_rate = lesion_columns(acc.summary())
    assert lesion == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert false_rate == pytest.approx(0.25)


def test_missing_classes_give_none():
    acc = MetricAccumulator(distances=False)
    acc.add(_mask(4, 12), _mask(4, 12), "benign")
    assert lesion_columns(acc.summary()) == (1.0, None)
    assert lesion_columns({}) == (None, None)
