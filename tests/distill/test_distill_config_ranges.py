"""Every float hyper-parameter of TrainConfig is finite and in range: NaN and inf are named,
never trained with (NaN passes any `x <= 0` comparison)."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.distill.config import FLOAT_RANGES, TrainConfig
from btseg.errors import ConfigError


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from([f[0] for f in FLOAT_RANGES]),
       value=st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.floats(-1e6, 1e6)))
def test_a_float_field_out_of_range_is_refused_by_name(field, value):
    _, low, low_open, high = next(f for f in FLOAT_RANGES if f[0] == field)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if ok:
        assert getattr(TrainConfig(**{field: value}), field) == value
    else:
        with pytest.raises(ConfigError, match=f"^{field}="):
            TrainConfig(**{field: value})


@settings(max_examples=40, deadline=None)
@given(st.integers(-5, 10_000))
def test_normal_repeat_is_bounded_both_ways(value):
    from btseg.distill.config import MAX_NORMAL_REPEAT

    if 1 <= value <= MAX_NORMAL_REPEAT:
        assert TrainConfig(normal_repeat=value).normal_repeat == value
    else:
        with pytest.raises(ConfigError, match="^normal_repeat="):
            TrainConfig(normal_repeat=value)
