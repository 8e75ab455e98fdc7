"""--opset out of the installed onnx's range is refused; the opset recorded is the one written."""

from __future__ import annotations

import json

import onnx
import pytest


@pytest.mark.parametrize("opset", ["999", "16", "0", "-3"])
def test_opset_out_of_range_is_one_line_exit_2(cli, tmp_path, opset):
    res = cli(tmp_path / "nope", "--opset", opset)
    assert res.exit_code == 2 and res.output.startswith("error: --opset") and len(res.output.splitlines()) == 1
    assert f"..{onnx.defs.onnx_opset_version()}" in res.output


def test_recorded_opset_is_read_from_the_written_model(cli, tmp_path):
    import torch

    from btseg.preprocess import PreprocessSpec
    from btseg.models import SimplifiedUNet
    from btseg.package import ModelConfig, save_package

    torch.manual_seed(0)
    pkg = tmp_path / "pkg"
    save_package(pkg, SimplifiedUNet(widths=(4, 8)).eval(),
                 ModelConfig("simplified_unet", {"widths": [4, 8]}, PreprocessSpec(size=(32, 32))))
    res = cli(pkg, "--target", "onnx", "--opset", "17", "--no-verify")
    assert res.exit_code == 0, res.output
    rec = next(a for a in json.loads((pkg / "manifest.json").read_text())["artifacts"] if a["target"] == "onnx")
    model = onnx.load(str(pkg / rec["file"]))
    written = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert rec["opset"] == written == 17
