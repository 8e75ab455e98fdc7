"""Small real datasets on disk, in the real layouts, built once per session.

Tests that damage a dataset copy it first (:func:`clone`), so the session fixtures stay valid.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from btseg import io
from btseg.data import phantom


def write_png(path: Path, arr: np.ndarray) -> Path:
    """btseg.io.write_png, returning the path (names may contain spaces and parentheses)."""
    io.write_png(path, arr)
    return path


def clone(src: Path, dst: Path) -> Path:
    """A private copy of a session dataset that a test may damage."""
    shutil.copytree(src, dst)
    return dst


def disc(size: int = 32, r: int = 6, c: tuple[int, int] = (16, 16)) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    cv2.circle(m, (c[1], c[0]), r, 255, -1)
    return m


@pytest.fixture(scope="session")
def busi_root(tmp_path_factory) -> Path:
    """A phantom in the BUSI layout under ``.../Dataset_BUSI_with_GT`` (24 images, 64 px)."""
    root = tmp_path_factory.mktemp("busi") / "Dataset_BUSI_with_GT"
    phantom.synthesize(root, n=24, size=64, seed=0, workers=1)
    return root


@pytest.fixture(scope="session")
def datasetb_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("udiat") / "DatasetB"
    phantom.write_datasetb(root, n=12, seed=1, size=64)
    return root


@pytest.fixture(scope="session")
def folder_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("folder") / "cases"
    phantom.write_folder(root, n=12, seed=2, size=64)
    return root


@pytest.fixture
def tiny_busi(tmp_path) -> Path:
    """A hand-made BUSI tree with known pixels: two lesion masks, an RGB image and RGB mask."""
    root = tmp_path / "Dataset_BUSI_with_GT"
    rng = np.random.default_rng(0)
    for cls in ("benign", "malignant", "normal"):
        for k in (1, 2):
            write_png(root / cls / f"{cls} ({k}).png", rng.integers(0, 255, (32, 32), np.uint8))
            write_png(root / cls / f"{cls} ({k})_mask.png", np.zeros((32, 32), np.uint8) if cls == "normal" else disc())
    # benign (1): a second lesion in _mask_1, merged with OR
    write_png(root / "benign" / "benign (1)_mask_1.png", disc(c=(5, 5), r=3))
    # malignant (2): RGB image (stored BGR by OpenCV) and an RGB mask
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 2] = 200  # pure red in RGB terms
    write_png(root / "malignant" / "malignant (2).png", bgr)
    write_png(root / "malignant" / "malignant (2)_mask.png", np.repeat(disc()[..., None], 3, axis=2))
    return root
