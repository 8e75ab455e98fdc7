"""Fixtures for btseg.distill: a small phantom data set and tiny configs (no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from btseg.data.phantom import synthesize
from btseg.distill.config import get_preset


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """24 phantom images (BUSI layout, 64 px): enough for a split with every class."""
    root = tmp_path_factory.mktemp("phantom") / "busi"
    synthesize(root, n=24, size=64, seed=0, workers=1)
    return root


@pytest.fixture()
def tiny_cfg():
    """The tiny preset, quiet."""
    return get_preset("tiny").replace(progress=False, device="cpu")


@pytest.fixture(autouse=True)
def _few_threads():
    # two cores shared with other test workers: keep torch from oversubscribing them
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
