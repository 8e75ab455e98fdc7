"""btseg.stats.paired_bootstrap on constructed cases: a known difference, none, coverage."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.stats import paired_bootstrap, proportion_ci


def test_known_difference_excludes_zero():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.5, 0.9, 60)
    a = b + 0.05 + rng.normal(0, 0.02, 60)  # a beats b by 0.05 on every image, give or take
    d, lo, hi = paired_bootstrap(a, b, 5000, seed=1)
    assert 0 < lo < d < hi and lo < 0.05 < hi


def test_identical_contains_zero():
    a = np.random.default_rng(1).uniform(0, 1, 40)
    assert paired_bootstrap(a, a.copy()) == (0.0, 0.0, 0.0)


def test_noise_without_difference_contains_zero():
    rng = np.random.default_rng(2)
    b = rng.uniform(0.3, 0.9, 80)
    a = b + rng.normal(0, 0.05, 80) * np.where(np.arange(80) % 2, 1, -1)
    d, lo, hi = paired_bootstrap(a, b, 5000)
    assert lo < 0 < hi


def test_pairs_matter_not_the_marginals():
    # the same two marginal samples: paired, a - b is +0.01 on every image; a CI from unpaired
    # resampling would span zero because the images differ far more than the models
    b = np.linspace(0.1, 0.9, 50)
    d, lo, hi = paired_bootstrap(b + 0.01, b, 2000)
    assert d == pytest.approx(0.01) and lo == pytest.approx(0.01) and hi == pytest.approx(0.01)


def test_coverage_near_95_percent():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(200):
        d = rng.normal(0.0, 1.0, 40)
        _, lo, hi = paired_bootstrap(d, np.zeros(40), 1000, seed=int(rng.integers(1 << 30)))
        hits += lo <= 0.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99  # percentile bootstrap at n=40: about 93-95%


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.floats(-0.5, 0.5), st.integers(0, 1000))
def test_shift_is_recovered_and_interval_ordered(values, shift, seed):
    b = np.array(values)
    d, lo, hi = paired_bootstrap(b + shift, b, 500, seed)
    assert d == pytest.approx(shift, abs=1e-9) and lo <= d + 1e-9 and d <= hi + 1e-9
    assert (d, lo, hi) == paired_bootstrap(b + shift, b, 500, seed)  # seeded: repeatable


def test_repeats_stay_together_and_bad_input_refused():
    a = np.array([[0.6, 0.7, 0.8], [0.8, 0.7, 0.6]])
    d, lo, hi = paired_bootstrap(a, np.full_like(a, 0.7), 1000)
    assert d == pytest.approx(0.0) and lo == pytest.approx(0.0) and hi == pytest.approx(0.0)
    for x, y in ((np.zeros(3), np.zeros(4)), (np.zeros(0), np.zeros(0)), (np.array([np.nan]), np.zeros(1)),
                 (np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))):
        with pytest.raises(ValueError):
            paired_bootstrap(x, y)


def test_proportion_ci_is_wilson_and_refuses_impossible_counts():
    lo, hi = proportion_ci(1, 8)
    assert 0.02 < lo < 0.025 and 0.47 < hi < 0.48  # Wilson 95%: [0.022, 0.471]
    lo, hi = proportion_ci(0, 100)
    assert lo == 0.0 and 0.03 < hi < 0.04
    for k, n in ((1, 0), (-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="expected n >= 1"):
            proportion_ci(k, n)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 500), st.data())
def test_proportion_ci_contains_the_observed_rate(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = proportion_ci(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
