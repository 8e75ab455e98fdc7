"""The synthetic B-mode generator: deterministic, and benign/malignant learnably different."""

from __future__ import annotations

import json

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


def _darkest(img: np.ndarray) -> float:
    """Darkest blob of the breast region (1st percentile of a blurred image / its median)."""
    import cv2

    b = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 2.5)
    n = img.shape[0]
    r = b[int(0.12 * n):int(0.7 * n), int(0.08 * n):int(0.92 * n)]
    return float(np.percentile(r, 1) / np.median(r))


def test_hard_normals_look_like_lesions_but_stay_out_of_masks():
    plain = np.array([_darkest(sample(3, i, "normal", 96)[0]) for i in range(32)])
    hard = np.array([_darkest(sample(3, i, "normal", 96, hard_normals=True)[0]) for i in range(32)])
    benign = np.array([_darkest(sample(3, i, "benign", 96)[0]) for i in range(32)])
    # the same normal image with its look-alikes added (a child stream) holds a darker blob in
    # most cases (ducts, shadows, lobules hypoechoic to the gland), though not as dark as a
    # benign lesion's core: a fat lobule is as bright as fat (phantom_normals.LOBULE_ECHO)
    assert (hard < plain - 0.02).sum() >= 18, np.round(hard - plain, 3)
    assert np.median(benign) < np.median(hard) < np.median(plain)
    for i in range(6):
        for label in ("normal", "benign", "malignant"):
            img0, m0 = sample(4, i, label, 64)
            img1, m1 = sample(4, i, label, 64, hard_normals=True)
            # the look-alikes come from a child stream: same lesions, same masks, never masked
            assert len(m0) == len(m1) and all(np.array_equal(a, b) for a, b in zip(m0, m1))
            if label == "normal":
                assert not np.array_equal(img0, img1)


def test_default_phantom_unchanged_by_the_hard_normal_option(tmp_path):
    img, masks = sample(5, 2, "benign", 64)
    img2, masks2 = sample(5, 2, "benign", 64, hard_normals=False)
    assert np.array_equal(img, img2) and all(np.array_equal(a, b) for a, b in zip(masks, masks2))
    s = synthesize(tmp_path / "h", n=6, size=48, seed=1, workers=1, hard_normals=True)
    assert s["hard_normals"] is True
    ds = open_dataset(tmp_path / "h")
    assert all(s.mask.any() == (s.label != "normal") for s in ds)


def test_a_set_drawn_by_another_generator_is_redrawn_not_reused(tmp_path, monkeypatch):
    """The demo reuses a phantom set only when the code that drew it is today's: a set drawn
    with darker fat lobules (the phantom before 2026-12) is another data set.  The lobule
    brightness also reaches spawned workers, so the set holds what phantom.json says."""
    from btseg.cli.demo import make_data
    from btseg.data import phantom_normals

    def made(data):
        return json.loads((data / "phantom.json").read_text())["generator"]

    data = make_data(tmp_path, 12, 32, 0, fresh=False, hard_normals=True)
    first, stamp = made(data), (data / "phantom.json").stat().st_mtime_ns
    assert make_data(tmp_path, 12, 32, 0, fresh=False, hard_normals=True) == data
    assert (data / "phantom.json").stat().st_mtime_ns == stamp  # same generator: reused
    monkeypatch.setattr(phantom_normals, "LOBULE_ECHO", (0.08, 0.3))
    make_data(tmp_path, 12, 32, 0, fresh=False, hard_normals=True)  # several spawned workers
    assert made(data) != first and made(data).endswith("-lobule-0.08-0.3")
    normals = sorted((data / "normal").glob("normal (*).png"))
    import cv2

    one = synthesize(tmp_path / "one", n=12, size=32, seed=0, workers=1, hard_normals=True)
    assert one["generator"] == made(data)
    for p in normals:  # one process and the pool drew the same images
        assert np.array_equal(cv2.imread(str(p), 0), cv2.imread(str(tmp_path / "one" / "normal" / p.name), 0))


def test_studies_refuse_to_resume_on_a_set_of_another_generator(tmp_path, monkeypatch):
    """The CV study and the scales sweep train runs in their work directory on its data: a set
    drawn by another phantom (the darker lobules, or older code) is refused by name."""
    import pytest
    from script_util import load_script

    from btseg.data import phantom_normals
    from btseg.data.phantom import ensure, generator_id
    from btseg.errors import ConfigError

    monkeypatch.setattr(phantom_normals, "LOBULE_ECHO", (0.08, 0.3))
    old = tmp_path / "work" / "data"
    synthesize(old, n=6, size=32, seed=0, workers=1, hard_normals=True)
    monkeypatch.undo()
    assert json.loads((old / "phantom.json").read_text())["generator"] != generator_id()
    sweep = load_script("benchmarks/scales_sweep.py")
    with pytest.raises(ConfigError, match="phantom set made otherwise.*generator"):
        sweep.prepare(tmp_path / "work", n=6, size=32)
    assert not (tmp_path / "work" / "runs").exists()
    study = load_script("benchmarks/ablation_cv.py")
    r = __import__("click.testing", fromlist=["CliRunner"]).CliRunner().invoke(
        study.main, ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "o"), "--n", "24", "--size", "32"])
    assert r.exit_code == 2 and "phantom set made otherwise" in r.output, r.output
    assert json.loads((old / "phantom.json").read_text())["n"] == 6  # refused, not redrawn
    # the same set under other arguments: named, and redrawn only when asked to
    with pytest.raises(ConfigError, match=r"n 6 \(now 8\)"):
        ensure(old, 8, 32, 0, hard_normals=True, other="refuse")
    assert ensure(old, 8, 32, 0, hard_normals=True)["n"] == 8
    assert ensure(old, 8, 32, 0, hard_normals=True) is None  # now it is today's: reused
