"""The presence decision ("no lesion"): properties of btseg.runtime.presence.decide and how
postprocess applies the package's spec."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from btseg.errors import SchemaError
from btseg.runtime.postprocess import finish, postprocess
from btseg.runtime.presence import PRESENCE_SCORES, PresenceSpec, components, decide

probs = arrays(np.float32, st.tuples(st.integers(4, 24), st.integers(4, 24)),
               elements=st.floats(0, 1, width=32, allow_nan=False))
specs = st.builds(PresenceSpec, score=st.sampled_from(PRESENCE_SCORES), min_area_frac=st.floats(0, 0.5),
                  threshold=st.floats(1e-3, 1.0))


def test_empty_probability_map_is_no_lesion():
    prob = np.zeros((32, 32), np.float32)
    for spec in (None, PresenceSpec("peak", 0.0, 0.01), PresenceSpec("area", 0.0, 1e-6)):
        present, score, mask = decide(prob, prob >= 0.5, spec)
        assert not present and score == 0.0 and not mask.any()


@settings(max_examples=60, deadline=None)
@given(prob=probs, spec=specs, t2=st.floats(1e-3, 1.0), a2=st.floats(0, 0.5))
def test_decision_is_monotone_and_consistent(prob, spec, t2, a2):
    mask = prob >= 0.5
    present, score, out = decide(prob, mask, spec)
    # "no lesion" empties the mask; a lesion keeps a part of the thresholded mask
    assert present == bool(out.any())
    assert not (out & ~mask).any()
    assert present == (score >= spec.threshold and score > 0)
    # stricter threshold or a larger minimum area can only turn "present" into "absent"
    stricter = PresenceSpec(spec.score, max(spec.min_area_frac, a2), max(spec.threshold, t2))
    if decide(prob, mask, stricter)[0]:
        assert present
    # the score does not depend on the threshold
    assert decide(prob, mask, PresenceSpec(spec.score, spec.min_area_frac, t2))[1] == score


@settings(max_examples=40, deadline=None)
@given(prob=probs)
def test_without_a_spec_nothing_is_gated(prob):
    mask = prob >= 0.5
    present, score, out = decide(prob, mask, None)
    assert out is mask and present == bool(mask.any())
    assert score == (float(prob[mask].max()) if mask.any() else 0.0)


def test_components_statistics():
    prob = np.zeros((10, 10), np.float32)
    prob[0:2, 0:2] = 0.6
    prob[5:9, 5:9] = 0.8
    prob[6, 6] = 0.95
    c = components(prob, prob >= 0.5)
    order = np.argsort(c.area_frac)
    assert c.area_frac[order].tolist() == [0.04, 0.16]
    assert np.allclose(c.peak[order], [0.6, 0.95])
    assert np.allclose(c.mean[order], [0.6, (15 * 0.8 + 0.95) / 16])
    assert np.allclose(c.mass[order], [0.024, (15 * 0.8 + 0.95) / 100])
    assert c.image_score("peak", 0.05) == pytest.approx(0.95) and c.image_score("peak", 0.2) == 0.0


def test_small_components_are_dropped_and_low_scores_empty_the_mask():
    prob = np.zeros((100, 100), np.float32)
    prob[10:12, 10:12] = 0.99  # a speck: 0.04% of the image
    prob[50:70, 50:70] = 0.7  # a faint blob: 4%
    mask = prob >= 0.5
    present, score, out = decide(prob, mask, PresenceSpec("peak", 0.001, 0.6))
    assert present and score == pytest.approx(0.7) and out.sum() == 400 and not out[10, 10]
    present, score, out = decide(prob, mask, PresenceSpec("peak", 0.001, 0.8))
    assert not present and not out.any() and score == pytest.approx(0.7)
    assert decide(prob, mask, PresenceSpec("peak", 0.0, 0.8))[0]  # the speck alone qualifies


def test_postprocess_applies_the_package_spec_and_records_it():
    logits = np.full((64, 64), -10.0, np.float32)
    logits[20:30, 20:30] = 0.5  # p = 0.62
    plain = postprocess(logits, (64, 64))
    assert plain.lesion_present and plain.area_px == 100
    gated = postprocess(logits, (64, 64), spec={"presence": {"score": "peak", "min_area_frac": 0.0,
                                                             "threshold": 0.9}})
    assert not gated.lesion_present and gated.area_px == 0 and gated.bbox is None
    assert gated.presence == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-3)
    rec = gated.to_record()
    assert rec["lesion_present"] is False and rec["presence"] == pytest.approx(gated.presence, abs=1e-6)
    # the same decision from a probability map already at the image's size
    again = finish(gated.prob, 0.5, {"presence": {"score": "peak", "min_area_frac": 0.0, "threshold": 0.9}})
    assert (again.lesion_present, again.presence) == (gated.lesion_present, gated.presence)


@pytest.mark.parametrize("bad,field", [({"score": "max", "min_area_frac": 0, "threshold": 0.5}, "score"),
                                       ({"score": "peak", "min_area_frac": 0.6, "threshold": 0.5}, "min_area_frac"),
                                       ({"score": "peak", "min_area_frac": 0, "threshold": 0}, "threshold"),
                                       ({"score": "peak", "min_area_frac": 0, "threshold": 1.5}, "threshold"),
                                       ({"score": "peak", "min_area_frac": 0, "threshold": float("nan")}, "threshold"),
                                       ({"score": "peak", "threshold": 0.5}, "min_area_frac")])
def test_bad_spec_names_the_field(bad, field):
    with pytest.raises(SchemaError, match=f"presence.{field}"):
        PresenceSpec.from_dict(bad)


def test_regions_combine_the_decisions():
    from btseg.runtime.regions import Region, segment_regions

    spec = {"presence": {"score": "peak", "min_area_frac": 0.0, "threshold": 0.9}}

    def segment(crop, spacing):  # a sure lesion in the left crop, a faint blob in the right one
        prob = np.zeros(crop.shape[:2], np.float32)
        prob[5:15, 5:15] = 0.95 if crop[0, 0] == 1 else 0.7
        return finish(prob, 0.5, spec)

    image = np.zeros((40, 80), np.uint8)
    image[:, :40] = 1
    left, right = Region(0, (0, 0, 40, 40), None, "roi"), Region(1, (40, 0, 40, 40), None, "roi")
    both = segment_regions(segment, image, [left, right], [])
    assert both.lesion_present and both.presence == pytest.approx(0.95) and both.area_px == 100
    only_faint = segment_regions(segment, image, [right], [])
    assert not only_faint.lesion_present and only_faint.area_px == 0
    assert only_faint.presence == pytest.approx(0.7)
    assert only_faint.to_record()["lesion_present"] is False
