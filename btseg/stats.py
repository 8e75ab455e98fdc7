"""Paired statistics for comparing two models on the same images (numpy only).

:func:`paired_bootstrap` is THE interval btseg reports for "variant A minus variant B":
the mean per-image difference and its 95% percentile interval, resampling *images* with
replacement (pairs stay pairs), seeded so a report is repeatable.  Rows of the input are
repeats of the same images (seeds); the repeats of one image stay together in every
resample, so the image, not the (image, seed) cell, is the unit of resampling.

Example::

    >>> import numpy as np
    >>> a = np.array([[0.8, 0.7, 0.9, 0.6]])
    >>> d, lo, hi = paired_bootstrap(a, a - 0.1, n_resamples=1000)
    >>> round(d, 3), round(lo, 3), round(hi, 3)
    (0.1, 0.1, 0.1)
"""

from __future__ import annotations

import numpy as np


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its 95% percentile interval, resampling images (columns).

    Args:
        a, b: ``(images,)`` or ``(repeats, images)`` per-image values of two models, the
            same images (columns) in the same order, so each column is a pair.
        n_resamples, seed: bootstrap draws and the numpy seed that makes them repeatable.
    Returns:
        ``(delta, ci95_low, ci95_high)``: the mean over repeats and images of the paired
        difference, and the 2.5/97.5 percentiles of that mean over image resamples.
    Raises:
        ValueError: shapes differ, are not 1-D/2-D, are empty, or hold NaN.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[None], b[None] if b.ndim == 1 else b
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise ValueError(f"paired_bootstrap: expected two equal (repeats, images) arrays, got {a.shape} and {b.shape}")
    d = a - b
    if np.isnan(d).any():
        raise ValueError("paired_bootstrap: NaN in the paired values; drop undefined images first")
    if n_resamples < 1:
        raise ValueError(f"paired_bootstrap: n_resamples={n_resamples}: expected >= 1")
    per_image = d.mean(axis=0)  # the repeats of one image stay together in every resample
    idx = np.random.default_rng(seed).integers(0, per_image.size, size=(n_resamples, per_image.size))
    means = per_image[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(per_image.mean()), float(lo), float(hi)


def proportion_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a rate of ``k`` in ``n`` (scipy's ``binomtest``): what "2 of
    24 normal images flagged" allows the true rate to be.  ValueError for n < 1 or k
    outside [0, n]."""
    from scipy.stats import binomtest

    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"proportion_ci: {k} of {n}: expected n >= 1 and 0 <= k <= n")
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)
