"""postprocess: sigmoid, resize back, threshold, clean-up, measurements."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from btseg.errors import DataError
from btseg.runtime.postprocess import fill_holes, largest_component, postprocess, sigmoid


def test_sigmoid_is_stable_at_extremes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = sigmoid(np.array([-1e4, 0.0, 1e4], np.float32))
    assert p.dtype == np.float32 and p.tolist() == [0.0, 0.5, 1.0]


def test_result_is_at_the_input_size_with_measurements():
    logits = np.full((1, 1, 64, 64), -10.0, np.float32)
    logits[..., 16:32, 8:40] = 10.0
    seg = postprocess(logits, (96, 128), 0.5, spacing_mm=(0.2, 0.1))
    assert seg.mask.shape == seg.prob.shape == (96, 128) and seg.mask.dtype == bool
    assert seg.prob.dtype == np.float32
    x, y, w, h = seg.bbox
    assert (x, y) == (16, 24) and abs(w - 64) <= 1 and abs(h - 24) <= 1
    assert seg.area_mm2 == pytest.approx(seg.area_px * 0.02)
    assert seg.contour.ndim == 2 and seg.contour.shape[1] == 2 and seg.contour.dtype == np.int32
    assert 0.9 < seg.confidence <= 1.0
    assert seg.to_record()["bbox"] == list(seg.bbox)


def test_empty_mask():
    seg = postprocess(np.full((32, 32), -5.0, np.float32), (40, 50))
    assert seg.area_px == 0 and seg.bbox is None and seg.contour.shape == (0, 2) and seg.area_mm2 is None
    assert seg.confidence == pytest.approx(1 - 1 / (1 + np.exp(5)), abs=1e-4)


def test_largest_component_and_fill_holes_from_the_spec():
    logits = np.full((64, 64), -10.0, np.float32)
    logits[5:30, 5:30] = 10.0
    logits[12:20, 12:20] = -10.0  # a hole
    logits[50:55, 50:55] = 10.0  # a speck
    plain = postprocess(logits, (64, 64))
    clean = postprocess(logits, (64, 64), spec={"largest_component": True, "fill_holes": True})
    assert plain.area_px == 25 * 25 - 64 + 25
    assert clean.area_px == 25 * 25 and clean.bbox == (5, 5, 25, 25)
    ring = np.zeros((10, 10), bool); ring[2:8, 2:8] = True; ring[4:6, 4:6] = False
    assert fill_holes(ring).sum() == 36 and largest_component(ring).sum() == 32


@pytest.mark.parametrize("spacing", [0, -1, (0.1, 0.2, 0.3), float("nan")])
def test_bad_spacing_is_a_data_error(spacing):
    with pytest.raises(DataError, match="spacing_mm"):
        postprocess(np.zeros((8, 8), np.float32), (8, 8), spacing_mm=spacing)
