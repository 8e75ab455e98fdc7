"""Calibration of the presence decision on validation images: it hits its target on a
constructed case, picks the cheapest candidate, and agrees with the runtime's decision."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.distill.calibrate import calibrate, evaluate_candidate, image_components, threshold_for
from btseg.errors import ConfigError
from btseg.runtime.postprocess import finish


def _blob(peak: float, side: int, size: int = 100, at: int = 40) -> np.ndarray:
    prob = np.zeros((size, size), np.float32)
    prob[at:at + side, at:at + side] = 0.6
    prob[at + side // 2, at + side // 2] = peak
    return prob


def _case():
    """20 lesion images: big blobs with peaks 0.80..0.99; 10 normal images: small specks
    that are very sure (peak 0.99) and 2 big faint look-alikes (peak 0.7)."""
    lesions = [_blob(0.80 + 0.01 * i, 20) for i in range(20)]
    normals = [_blob(0.99, 3) for _ in range(8)] + [_blob(0.7, 20) for _ in range(2)]
    return lesions + normals, [True] * 20 + [False] * 10


def test_calibration_hits_its_target_and_removes_the_look_alikes():
    probs, has = _case()
    comps = [image_components(p, 0.5, {}) for p in probs]
    spec = calibrate(comps, has, target=0.95)
    cal = spec["calibration"]
    # 19 of 20 lesion images must stay detected: the threshold is the 19th highest score
    assert cal["reached"] and cal["val"]["detected"] >= 19 and cal["val"]["n_lesion"] == 20
    # a peak threshold alone cannot tell the sure specks from lesions; a minimum area can
    assert spec["min_area_frac"] > 0.0009 and cal["val"]["flagged"] == 0
    peak_only = next(r for r in cal["candidates"] if (r["score"], r["min_area_frac"]) == ("peak", 0.0))
    assert peak_only["flagged"] == 8
    # the runtime, given the calibrated spec, makes exactly the counted decisions
    present = [finish(p, 0.5, {"presence": spec}).lesion_present for p in probs]
    assert sum(p for p, g in zip(present, has) if g) == cal["val"]["detected"]
    assert sum(p for p, g in zip(present, has) if not g) == 0


def test_no_lesion_images_means_no_calibration():
    probs, has = _case()
    assert calibrate([image_components(p, 0.5, {}) for p in probs[20:]], has[20:]) is None


def test_unreachable_target_leaves_the_decision_ungated():
    probs = [_blob(0.9, 20)] * 5 + [np.zeros((100, 100), np.float32)] * 5  # half the lesions have no mask
    spec = calibrate([image_components(p, 0.5, {}) for p in probs], [True] * 10, target=0.95, pixel_threshold=0.5)
    assert spec["calibration"]["reached"] is False
    assert (spec["score"], spec["min_area_frac"], spec["threshold"]) == ("peak", 0.0, 0.5)


@settings(max_examples=80, deadline=None)
@given(scores=st.lists(st.floats(0, 1), min_size=1, max_size=60), target=st.floats(0.05, 1.0))
def test_threshold_is_the_largest_that_meets_the_target(scores, target):
    t = threshold_for(scores, target)
    need = math.ceil(target * len(scores) - 1e-9)
    if t is None:
        assert sorted(scores, reverse=True)[need - 1] == 0
        return
    assert sum(s >= t for s in scores) >= need
    assert sum(s >= np.nextafter(t, 2.0) for s in scores) < need  # any higher one misses the target


@pytest.mark.parametrize("target", [0, -0.1, 1.5, float("nan")])
def test_bad_target_is_a_config_error(target):
    with pytest.raises(ConfigError, match="presence target"):
        threshold_for([0.5], target)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.01, 1.0), a=st.sampled_from([0.0, 0.001, 0.01, 0.05]),
       score=st.sampled_from(["peak", "mean", "mass", "area"]))
def test_counting_agrees_with_the_runtime_decision(seed, t, a, score):
    rng = np.random.default_rng(seed)
    probs = [np.clip(rng.normal(0.3, 0.3, (24, 24)), 0, 1).astype(np.float32) for _ in range(6)]
    has = [bool(i % 2) for i in range(6)]
    counted = evaluate_candidate([image_components(p, 0.5, {}) for p in probs], has, score, a, t)
    spec = {"presence": {"score": score, "min_area_frac": a, "threshold": t}}
    present = [finish(p, 0.5, spec).lesion_present for p in probs]
    assert counted["detected"] == sum(p for p, g in zip(present, has) if g)
    assert counted["flagged"] == sum(p for p, g in zip(present, has) if not g)


@pytest.mark.parametrize("n_lesion, warned", [(10, True), (19, True), (20, False), (40, False)])
def test_too_few_validation_lesions_is_said_and_recorded(n_lesion, warned):
    import warnings

    from btseg.distill.calibrate import CalibrationWarning

    probs = [_blob(0.80 + 0.005 * i, 20) for i in range(n_lesion)] + [_blob(0.7, 20)]
    comps = [image_components(p, 0.5, {}) for p in probs]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        spec = calibrate(comps, [True] * n_lesion + [False], target=0.95)
    ours = [w for w in seen if issubclass(w.category, CalibrationWarning)]
    assert bool(ours) == warned and ("warning" in spec["calibration"]) == warned
    if warned:
        assert f"{n_lesion} val lesion image(s)" in str(ours[0].message) and "at least 20" in str(ours[0].message)
        # with no miss allowed, the threshold is the lowest lesion score
        assert spec["threshold"] == pytest.approx(min(c.image_score("peak", 0.0) for c in comps[:n_lesion]))
