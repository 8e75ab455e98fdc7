"""btseg.metrics: values and the documented empty-mask conventions."""

import math

import numpy as np
import pytest

from btseg import metrics as M


def square(n=32, r0=8, r1=16, c0=8, c1=16):
    a = np.zeros((n, n), bool)
    a[r0:r1, c0:c1] = True
    return a


def test_known_overlap_values():
    a, b = square(), square(r0=10, r1=18)
    assert M.dice(a, b) == pytest.approx(2 * 48 / 128)
    assert M.iou(a, b) == pytest.approx(48 / 80)
    assert M.precision(a, b) == pytest.approx(48 / 64)
    assert M.recall(a, b) == pytest.approx(48 / 64)
    assert M.hd95(a, b) == pytest.approx(2.0)
    assert M.hd95(a, b, spacing=(0.5, 0.5)) == pytest.approx(1.0)


def test_perfect_prediction():
    a = square()
    assert M.dice(a, a) == 1.0 and M.iou(a, a) == 1.0 and M.hd95(a, a) == 0.0 and M.assd(a, a) == 0.0


def test_both_empty_conventions():
    e = np.zeros((16, 16), bool)
    assert M.dice(e, e) == 1.0 and M.iou(e, e) == 1.0
    assert M.hd95(e, e) == 0.0 and M.specificity(e, e) == 1.0
    assert math.isnan(M.precision(e, e)) and math.isnan(M.recall(e, e))


def test_one_empty_conventions():
    e, a = np.zeros((30, 40), bool), square(n=40)[:30]
    assert M.dice(e, a) == 0.0 and M.dice(a, e) == 0.0
    assert M.hd95(e, a) == pytest.approx(50.0)  # the image diagonal
    assert M.hd95(e, a, spacing=(0.1, 0.1)) == pytest.approx(5.0)
    assert math.isnan(M.hd95(e, a, empty_distance="nan"))
    assert M.recall(e, a) == 0.0 and math.isnan(M.precision(e, a))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        M.dice(np.zeros((4, 4)), np.zeros((4, 5)))


def test_accumulator_per_class_and_nan_counting():
    acc = M.MetricAccumulator()
    a, e = square(), np.zeros((32, 32), bool)
    acc.add(a, a, "benign")
    acc.add(e, a, "malignant")
    acc.add(e, e, "normal")
    s = acc.summary()
    assert s["overall"]["dice"]["mean"] == pytest.approx(2 / 3)
    assert s["per_class"]["malignant"]["dice"]["mean"] == 0.0
    assert s["overall"]["precision"]["n_valid"] == 1 and s["overall"]["precision"]["n"] == 3
    assert set(s["per_class"]) == {"benign", "malignant", "normal"}
