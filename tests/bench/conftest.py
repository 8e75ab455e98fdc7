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
    from btseg.data.transforms import PreprocessSpec
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
    try:
        from btseg.export import run_export
    except ImportError:  # TEMPORARY until btseg.export lands: same low-level export functions
        _export_low_level(pkg)
    else:
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


def _export_low_level(pkg: Path) -> None:
    from btseg.export.onnx import export_onnx
    from btseg.export.openvino import export_ir
    from btseg.io import sha256_file
    from btseg.package import ArtifactRecord, load_package

    p = load_package(pkg)
    export_onnx(p.build_model(), (SIZE, SIZE), pkg / "model-fp32.onnx", {}, 17)
    export_ir(pkg / "model-fp32.onnx", pkg / "openvino-fp32", "fp32")
    for rid, target, prec, file in [("onnx-fp32", "onnx", "fp32", "model-fp32.onnx"),
                                    ("openvino-fp32", "openvino", "fp32", "openvino-fp32/model.xml")]:
        p.add_artifact(ArtifactRecord(id=rid, target=target, precision=prec, file=file,
                                      sha256=sha256_file(pkg / file), size_bytes=(pkg / file).stat().st_size))
