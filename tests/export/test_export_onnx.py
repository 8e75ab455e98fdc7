"""ONNX FP32 / FP16 / INT8 artifacts: checker, names, shapes, metadata, folding, Q/DQ."""

from __future__ import annotations

import json

import numpy as np
import onnx

from btseg.export.onnx import io_signature, read_metadata


def test_fp32_passes_checker_names_static_shape_metadata_no_bn(exported):
    path = exported / "student-fp32.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ins, outs = io_signature(path)
    assert [i["name"] for i in ins] == ["image"] and [o["name"] for o in outs] == ["logits"]
    assert ins[0]["shape"] == [1, 1, 64, 64] and outs[0]["shape"] == [1, 1, 64, 64]
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    meta = read_metadata(path)
    assert json.loads(meta["preprocess"])["size"] == [64, 64]
    assert float(meta["threshold"]) == 0.5 and meta["btseg_version"] and meta["precision"] == "fp32"
    assert meta["exporter"].startswith("torch.onnx")


def test_fp16_has_half_weights_and_float_io(exported):
    path = exported / "student-fp16.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    ins, outs = io_signature(path)
    assert ins[0]["dtype"] == "float32" and outs[0]["dtype"] == "float32"
    assert read_metadata(path)["precision"] == "fp16"


def test_int8_is_qdq_with_per_channel_weight_scales(exported):
    model = onnx.load(str(exported / "student-int8.onnx"))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    dims = {i.name: list(i.dims) for i in model.graph.initializer}
    inits = {i.name: i for i in model.graph.initializer}
    per_channel = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                   and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(dims[n.input[1]]) == 1
                   and dims[n.input[1]][0] > 1]
    assert per_channel, "no per-channel INT8 weight scales"
    # the ONNX Runtime recipe (btseg.export.quantize.ORT_CPU): uint8 activations (U8S8, what
    # ORT's x86 kernels fuse), symmetric int8 weights (every weight zero point is 0)
    zps = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
           and n.input[2] in inits]
    assert zps and all(z.data_type == onnx.TensorProto.UINT8 for z in zps)
    wzps = [inits[n.input[2]] for n in per_channel if len(n.input) > 2 and n.input[2] in inits]
    assert wzps and all(not np.any(onnx.numpy_helper.to_array(z)) for z in wzps)


def test_dynamic_batch_export(pkg_copy, phantom, cli):
    r = cli(pkg_copy, "--target", "onnx", "--precision", "fp32", "--dynamic-batch", "--verify-data", phantom,
            "--verify-n", "2")
    assert r.exit_code == 0, r.output
    ins, outs = io_signature(pkg_copy / "student-fp32.onnx")
    assert isinstance(ins[0]["shape"][0], str) and ins[0]["shape"][1:] == [1, 64, 64]
    assert isinstance(outs[0]["shape"][0], str)
    man = json.loads((pkg_copy / "manifest.json").read_text())
    assert man["artifacts"][0]["extra"]["dynamic_batch"] is True
