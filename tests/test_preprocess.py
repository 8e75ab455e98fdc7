"""THE preprocessing: layouts, dtypes, and clear errors for bad arrays."""

import numpy as np
import pytest

from btseg.preprocess import PreprocessSpec, preprocess, resize_mask, resize_prob
from btseg.errors import ConfigError, DataError

SPEC = PreprocessSpec(size=(32, 48))


def test_gray_rgb_rgba_agree():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (60, 80), dtype=np.uint8)
    rgb = np.repeat(g[..., None], 3, axis=2)
    rgba = np.concatenate([rgb, np.full_like(g[..., None], 255)], axis=2)
    ref = preprocess(g, SPEC)
    assert ref.shape == (1, 32, 48) and ref.dtype == np.float32
    np.testing.assert_allclose(preprocess(rgb, SPEC), ref, atol=1e-6)
    np.testing.assert_allclose(preprocess(rgba, SPEC), ref, atol=1e-6)
    np.testing.assert_allclose(preprocess(g[..., None], SPEC), ref, atol=1e-6)


def test_uint16_and_float_map_to_same_range():
    g = np.full((40, 40), 255, np.uint8)
    ref = preprocess(g, SPEC)
    np.testing.assert_allclose(preprocess(np.full((40, 40), 65535, np.uint16), SPEC), ref, atol=1e-5)
    np.testing.assert_allclose(preprocess(np.ones((40, 40), np.float32), SPEC), ref, atol=1e-5)
    assert ref.max() == pytest.approx((1 - 0.5) / 0.25)


@pytest.mark.parametrize("bad,msg", [(np.zeros((0, 5), np.uint8), "empty"),
                                     (np.zeros((4, 4, 4, 4), np.uint8), "shape"),
                                     (np.zeros((4, 4, 2), np.uint8), "shape"),
                                     (np.zeros((4, 4), np.int64), "dtype"),
                                     (np.full((4, 4), np.nan, np.float32), "NaN"),
                                     ([[1, 2]], "numpy array")])
def test_bad_arrays_raise_data_error(bad, msg):
    with pytest.raises(DataError, match=msg):
        preprocess(bad, SPEC)


def test_spec_round_trip_and_validation():
    assert PreprocessSpec.from_dict(SPEC.to_dict()) == SPEC
    with pytest.raises(ConfigError, match="interpolation"):
        PreprocessSpec(interpolation="lanczos9")


def test_resize_helpers():
    m = np.zeros((8, 8), bool)
    m[2:6, 2:6] = True
    assert resize_mask(m, (16, 16)).sum() == 64
    assert resize_prob(m.astype(np.float32), (16, 12)).shape == (16, 12)
