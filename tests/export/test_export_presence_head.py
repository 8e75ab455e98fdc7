"""A student with a presence head (tests/models/test_presence_head.py) goes through the same
export and runtime as any student: its gate is inside the one output."""

import torch
from backend_util import assert_backends_match_torch

from btseg.models import create_model

KW = {"widths": [8, 16, 32]}


def test_a_package_with_a_head_exports_and_every_backend_matches_torch(tmp_path, phantom):
    from btseg.export import run_export
    from btseg.package import ModelConfig, load_package, save_package
    from btseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    kw = {**KW, "presence_head": True}
    save_package(tmp_path / "s", create_model("simplified_unet", **kw).eval(),
                 ModelConfig("simplified_unet", kw, PreprocessSpec(size=(64, 64))))
    assert load_package(tmp_path / "s").build_model().presence_head  # the kwarg survives model.json
    run_export(tmp_path / "s", ["onnx", "openvino"], ["fp32"], verify_data=phantom, verify_n=4)
    assert_backends_match_torch(tmp_path / "s")
