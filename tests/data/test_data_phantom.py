"""The synthetic B-mode generator: deterministic, and benign/malignant learnably different."""

from __future__ import annotations

import numpy as np

from btseg.data import open_dataset
from btseg.data.phantom import sample, synthesize


def test_deterministic_per_seed_and_independent_of_workers(tmp_path):
    a, m = sample(5, 3, "malignant", 64)
    b, n = sample(5, 3, "malignant", 64)
    assert np.array_equal(a, b) and all(np.array_equal(x, y) for x, y in zip(m, n))
    assert not np.array_equal(a, sample(6, 3, "malignant", 64)[0])
    synthesize(tmp_path / "w1", n=6, size=48, seed=1, workers=1)
    synthesize(tmp_path / "w2", n=6, size=48, seed=1, workers=2)
    files = sorted(p.relative_to(tmp_path / "w1") for p in (tmp_path / "w1").rglob("*.png"))
    assert len(files) >= 12
    assert all((tmp_path / "w1" / f).read_bytes() == (tmp_path / "w2" / f).read_bytes() for f in files)


def test_masks_non_empty_for_lesions_and_empty_for_normal(busi_root):
    for s in open_dataset(busi_root):
        assert s.mask.any() == (s.label != "normal"), s.path
        assert s.image.shape == (64, 64) and s.image.std() > 10  # speckle, not a flat image


def _features(label: str, n: int = 16, size: int = 96) -> tuple[float, float]:
    """Mean bounding-box height/width, and mean posterior/side intensity ratio below the lesion."""
    aspects, posterior = [], []
    for i in range(n):
        img, masks = sample(11, i, label, size)
        rows, cols = np.nonzero(masks[0])
        h, w = np.ptp(rows) + 1, np.ptp(cols) + 1
        aspects.append(h / w)
        below = slice(rows.max() + 2, min(size, rows.max() + 2 + h))
        inside = img[below, cols.min():cols.max() + 1].astype(float)
        outside = np.delete(img[below], np.arange(max(0, cols.min() - 4), min(size, cols.max() + 5)), axis=1)
        posterior.append(inside.mean() / max(outside.mean(), 1.0))
    return float(np.mean(aspects)), float(np.mean(posterior))


def test_benign_and_malignant_differ_measurably():
    b_aspect, b_post = _features("benign")
    m_aspect, m_post = _features("malignant")
    assert b_aspect < 1.0 < m_aspect  # wider than tall vs taller than wide
    assert b_post > 1.05 and m_post < 0.8  # posterior enhancement vs shadowing
