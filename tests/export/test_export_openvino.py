"""OpenVINO IR at FP32 / FP16 / INT8: files, hashes, verification through the runtime."""

from __future__ import annotations

import pytest

from btseg.io import sha256_file
from btseg.package import load_package


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_ir_exists_hashes_and_verifies(exported, precision):
    rec = load_package(exported).artifact("openvino", precision)
    assert rec.file == f"openvino-{precision}/model.xml" and rec.status == "ok"
    d = exported / f"openvino-{precision}"
    assert {p.name for p in d.iterdir()} == {"model.xml", "model.bin"}
    files = {f["file"]: f["sha256"] for f in rec.files}  # both files, each hashed and checked at load
    assert files == {f"openvino-{precision}/model.xml": sha256_file(d / "model.xml"),
                     f"openvino-{precision}/model.bin": sha256_file(d / "model.bin")}
    assert rec.sha256 == files[rec.file]
    assert rec.size_bytes == sum((d / n).stat().st_size for n in ("model.xml", "model.bin"))
    v = rec.verification
    assert v["status"] == "passed" and v["n_images"] == 8 and v["backend"]["backend"] == "openvino"
    assert rec.toolchain["openvino"] and rec.toolchain["nncf"]
    assert rec.inputs[0]["name"] == "image" and rec.outputs[0]["name"] == "logits"


def test_fp16_compressed_and_int8_quantized(exported):
    pkg = load_package(exported)
    assert pkg.artifact("openvino", "fp16").extra["compress_to_fp16"] is True
    assert pkg.artifact("openvino", "fp32").extra["compress_to_fp16"] is False
    int8 = pkg.artifact("openvino", "int8")
    assert int8.extra["quantizer"] == "nncf.quantize" and int8.extra["calibration"]["used"] == 8
    assert "FakeQuantize" in (exported / "openvino-int8" / "model.xml").read_text()
    # fp16 weights take about half the bytes of fp32 ones
    assert (exported / "openvino-fp16/model.bin").stat().st_size < 0.6 * (exported / "openvino-fp32/model.bin").stat().st_size
