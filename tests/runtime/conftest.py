"""Fixtures for the runtime tests: a tiny random-init package, exported for real.

The package is a SimplifiedUNet(widths=(8, 16, 32)) at 64x64 whose last bias is shifted
so that about half of each phantom image is foreground: with a plain random init every
pixel lands on one side of the threshold and mask parity would be trivially 1.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from btseg.preprocess import PreprocessSpec, preprocess
from btseg.models import SimplifiedUNet
from btseg.package import ModelConfig, save_package

SPEC = PreprocessSpec(size=(64, 64))


def make_images(n: int = 6) -> list[np.ndarray]:
    """Phantom B-mode frames at sizes other than the network's (gray and RGB)."""
    from btseg.data.phantom import sample

    out = []
    for i in range(n):
        img, _ = sample(7, i, "benign" if i % 2 else "malignant", 96)
        img = cv2.resize(img, (128, 96)) if i % 3 == 0 else img
        out.append(np.repeat(img[..., None], 3, axis=2) if i % 4 == 1 else img)
    return out


@pytest.fixture(scope="session")
def images() -> list[np.ndarray]:
    return make_images()


def _build_package(root: Path, images: list[np.ndarray]) -> Path:
    torch.manual_seed(0)
    model = SimplifiedUNet(widths=(8, 16, 32)).eval()
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.out_channels == 1][-1]
    x = torch.from_numpy(np.stack([preprocess(im, SPEC) for im in images]))
    with torch.no_grad():
        last.bias -= model(x).median()
    save_package(root, model, ModelConfig("simplified_unet", {"widths": [8, 16, 32]}, SPEC))
    return root


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory, images) -> Path:
    """A package with weights only (no artifacts). Do not modify: copy it (see copy_package)."""
    return _build_package(tmp_path_factory.mktemp("pkg") / "tiny", images)


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory, images) -> Path:
    """The test images as PNG files (verification data for the exporter, CLI inputs)."""
    d = tmp_path_factory.mktemp("images")
    for i, im in enumerate(images):
        cv2.imwrite(str(d / f"scan{i}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR) if im.ndim == 3 else im)
    return d


def export(root: Path, image_dir: Path, targets: list[str], precisions: list[str]) -> None:
    """Export through btseg.export (the one implementation)."""
    from btseg.export import run_export

    run_export(root, targets=targets, precisions=precisions, verify_data=image_dir, verify_n=6,
               dynamic_batch=True)


@pytest.fixture(scope="session")
def exported_package(tmp_path_factory, tiny_package, image_dir) -> Path:
    """tiny_package plus onnx/fp32 and openvino/fp32 artifacts, built by btseg.export."""
    root = tmp_path_factory.mktemp("exported") / "tiny"
    shutil.copytree(tiny_package, root)
    export(root, image_dir, ["onnx", "openvino"], ["fp32"])
    return root


@pytest.fixture()
def copy_package(tmp_path, exported_package):
    """A private copy of the exported package, safe to tamper with."""

    def make() -> Path:
        dst = tmp_path / "pkg"
        shutil.copytree(exported_package, dst)
        return dst

    return make
