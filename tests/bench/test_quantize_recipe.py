"""The ONNX Runtime INT8 recipe: recorded in the manifest, and every Conv fused to QLinearConv.

The second check is why ORT INT8 is faster than FP32 (no timing here): with the old S8S8
recipe half the Convs stayed float between DequantizeLinear/QuantizeLinear pairs.
"""

from __future__ import annotations

import collections

import onnx
import onnxruntime as ort

from btseg.export.quantize import ORT_CPU, RECIPES
from btseg.package import load_package


def _optimized_ops(path, tmp_path) -> collections.Counter:
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node)


def test_recipe_is_recorded_in_the_manifest(run_dir):
    rec = next(a for a in load_package(run_dir / "student").artifacts() if a.id == "onnx-int8")
    assert rec.extra["recipe"] == ORT_CPU.describe()
    assert rec.extra["recipe"]["activation_type"] == "uint8" and rec.extra["recipe"]["per_channel"]
    assert RECIPES["onnxruntime"] is ORT_CPU and not ORT_CPU.activation_symmetric


def test_ort_int8_graph_has_uint8_activations_and_no_float_conv(run_dir, tmp_path):
    pkg = run_dir / "student"
    rec = next(a for a in load_package(pkg).artifacts() if a.id == "onnx-int8")
    graph = onnx.load(str(pkg / rec.file)).graph
    inits = {i.name: i for i in graph.initializer}
    zps = [inits[n.input[2]] for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2
           and n.input[2] in inits]
    assert zps and all(z.data_type == onnx.TensorProto.UINT8 for z in zps)
    ops = _optimized_ops(pkg / rec.file, tmp_path)
    n_conv = sum(1 for n in graph.node if n.op_type == "Conv")
    assert ops["QLinearConv"] == n_conv and ops["Conv"] == 0
    # Q/DQ left only at the graph's float input and output
    assert ops["QuantizeLinear"] <= 1 and ops["DequantizeLinear"] <= 1
    # every 2x upsample runs as a uint8 Expand: no Resize (a per-element loop in NHWC), and the
    # rewrite's Transposes cancelled against ORT's layout ones (only the input/output pair left)
    n_up = len(load_package(pkg).config.kwargs.get("widths", [0] * 5)) - 1
    assert ops["Resize"] == 0 and ops["Expand"] == n_up and ops["Transpose"] <= 2
    assert rec.extra["graph_rewrites"] == {"nearest2x-nhwc-expand": n_up}
