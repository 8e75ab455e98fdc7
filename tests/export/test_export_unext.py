"""The UNeXt-style baseline goes through the same export and runtime as the student."""

import torch
from backend_util import assert_backends_match_torch

from btseg.export import run_export
from btseg.models import UNeXt
from btseg.package import ModelConfig, save_package
from btseg.preprocess import PreprocessSpec


def test_unext_exports_to_onnx_and_openvino_and_matches_torch(tmp_path, phantom):
    torch.manual_seed(0)
    kw = {"widths": [8, 16, 24, 32, 48]}
    save_package(tmp_path / "unext", UNeXt(**kw), ModelConfig("unext", kw, PreprocessSpec(size=(64, 64)),
                                                              role="baseline"))
    run_export(tmp_path / "unext", ["onnx", "openvino"], ["fp32"], verify_data=phantom, verify_n=4)
    assert_backends_match_torch(tmp_path / "unext")
