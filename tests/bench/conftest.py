"""Fixtures for the bench tests: a small phantom data set and a tiny exported student.

Real components only: the phantom is btseg.data.phantom, the package is written by
btseg.package.save_package, the artifacts come from btseg.export.run_export (ONNX fp32 +
int8 QDQ, OpenVINO fp32), run by the real onnxruntime and OpenVINO backends.
The model is random-init at 64 px: these tests check the plumbing, not the accuracy.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

SIZE = 64


def make_package(root: Path, seed: int = 0, role: str = "student", widths=(8, 16, 32)) -> Path:
    from btseg.preprocess import PreprocessSpec
    from btseg.models import create_model
    from btseg.package import ModelConfig, save_package

    torch.manual_seed(seed)
    kwargs = {"widths": list(widths)}
    model = create_model("simplified_unet", **kwargs).eval()
    save_package(root, model, ModelConfig(architecture="simplified_unet", kwargs=kwargs, role=role, preset="test",
                                          preprocess=PreprocessSpec(size=(SIZE, SIZE))))
    return root


@pytest.fixture(scope="session")
def phantom(tmp_path_factory) -> Path:
    from btseg.data.phantom import synthesize

    out = tmp_path_factory.mktemp("phantom") / "data"
    synthesize(out, n=24, size=96, seed=0, workers=1)
    return out


@pytest.fixture(scope="session")
def exported(tmp_path_factory, phantom) -> Path:
    """A run dir with ``student`` (onnx fp32/int8 + openvino fp32) and ``teacher-benign`` (no artifacts)."""
    run = tmp_path_factory.mktemp("run")
    pkg = make_package(run / "student")
    from btseg.export import run_export

    # verification of a random-init model against ground truth is meaningless: no gate
    run_export(pkg, ["onnx", "openvino"], ["fp32", "int8"], calib_data=phantom, calib_size=8, verify=False)
    make_package(run / "teacher-benign", seed=1, role="teacher", widths=(8, 16))
    return run


@pytest.fixture()
def run_dir(exported, tmp_path) -> Path:
    """A private copy, so a test may corrupt artifacts."""
    dst = tmp_path / "run"
    shutil.copytree(exported, dst)
    return dst

