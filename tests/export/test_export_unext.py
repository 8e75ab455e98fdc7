"""The UNeXt-style baseline goes through the same export and runtime as the student."""

import numpy as np
import torch

from btseg.preprocess import PreprocessSpec
from btseg.export import run_export
from btseg.metrics import dice
from btseg.models import UNeXt
from btseg.package import ModelConfig, save_package
from btseg.runtime import Segmenter


def test_unext_exports_to_onnx_and_openvino_and_matches_torch(tmp_path, phantom):
    torch.manual_seed(0)
    kw = {"widths": [8, 16, 24, 32, 48]}
    save_package(tmp_path / "unext", UNeXt(**kw), ModelConfig("unext", kw, PreprocessSpec(size=(64, 64)),
                                                              role="baseline"))
    run_export(tmp_path / "unext", ["onnx", "openvino"], ["fp32"], verify_data=phantom, verify_n=4)
    frame = np.random.default_rng(0).integers(0, 255, (70, 90), dtype=np.uint8)
    ref = Segmenter.load(tmp_path / "unext", backend="torch").segment(frame)
    for backend in ("onnxruntime", "openvino"):
        out = Segmenter.load(tmp_path / "unext", backend=backend).segment(frame)
        assert np.abs(out.prob - ref.prob).max() < 1e-3
        assert dice(out.mask, ref.mask) > 0.99
