"""Exact graph rewrites of the INT8 recipes (btseg.export.rewrite), run for real on ONNX Runtime.

The rewrite must give the same values bit for bit as the ``Resize`` it replaces, for any
shape, batch (static or dynamic), dtype and value, and must leave every ``Resize`` that is
not exactly a 2x nearest upsample untouched.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from btseg.export import rewrite

DTYPES = {np.float32: TensorProto.FLOAT, np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def resize_model(shape, dtype=np.float32, scales=(1.0, 1.0, 2.0, 2.0), dynamic_batch=False, use_sizes=False,
                 **attrs) -> onnx.ModelProto:
    """x -> Resize -> y, with the attributes torch's export uses by default."""
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor", **attrs}
    n, c, h, w = shape
    inits = [numpy_helper.from_array(np.zeros(0, np.float32), "roi")]
    if use_sizes:
        inits.append(numpy_helper.from_array(np.array([n, c, 2 * h, 2 * w], np.int64), "sizes"))
        ins = ["x", "roi", "", "sizes"]
    else:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        ins = ["x", "roi", "scales"]
    node = helper.make_node("Resize", ins, ["y"], name="up", **attrs)
    batch = "N" if dynamic_batch else n
    x = helper.make_tensor_value_info("x", DTYPES[dtype], [batch, c, h, w])
    y = helper.make_tensor_value_info("y", DTYPES[dtype], [batch, c, 2 * h, 2 * w])
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 9), w=st.integers(1, 9),
       dtype=st.sampled_from(list(DTYPES)), dynamic=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_rewrite_is_bit_exact_for_any_shape_dtype_and_batch(n, c, h, w, dtype, dynamic, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) * 50).astype(dtype) if dtype == np.float32 else \
        rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, (n, c, h, w)).astype(dtype)
    ref = resize_model((n, c, h, w), dtype, dynamic_batch=dynamic)
    new = resize_model((n, c, h, w), dtype, dynamic_batch=dynamic)
    assert rewrite.apply(new, [rewrite.NEAREST2X]) == {rewrite.NEAREST2X: 1}
    onnx.checker.check_model(new, full_check=True)
    assert "Resize" not in ops(new) and ops(new).count("Expand") == 1
    expected = run(ref, x)
    got = run(new, x)
    assert got.dtype == expected.dtype and got.shape == expected.shape == (n, c, 2 * h, 2 * w)
    np.testing.assert_array_equal(got, expected)
    if dynamic and n > 1:  # one graph serves every batch size
        np.testing.assert_array_equal(run(new, x[:1]), expected[:1])


def test_rewrite_accepts_sizes_instead_of_scales():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    model = resize_model(x.shape, use_sizes=True)
    expected = run(model, x)
    assert rewrite.nearest2x_to_nhwc_expand(model) == 1
    np.testing.assert_array_equal(run(model, x), expected)


@pytest.mark.parametrize("kw", [
    {"scales": (1.0, 1.0, 3.0, 3.0)},                      # not 2x
    {"scales": (1.0, 1.0, 2.0, 1.0)},                      # one axis only
    {"scales": (1.0, 2.0, 2.0, 2.0)},                      # channels too
    {"mode": "linear"},                                    # not nearest
    {"coordinate_transformation_mode": "half_pixel"},      # other sampling grid
    {"nearest_mode": "round_prefer_floor"},                # other rounding
])
def test_other_resizes_are_left_alone(kw):
    model = resize_model((1, 2, 4, 4), **kw)
    before = model.SerializeToString()
    assert rewrite.nearest2x_to_nhwc_expand(model) == 0
    assert model.SerializeToString() == before


def test_unknown_spatial_shape_is_left_alone():
    model = resize_model((1, 2, 4, 4))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    assert rewrite.nearest2x_to_nhwc_expand(model) == 0 and "Resize" in ops(model)


def test_unknown_rewrite_name_is_refused():
    with pytest.raises(ValueError, match="unknown graph rewrite"):
        rewrite.apply(resize_model((1, 1, 2, 2)), ["resize-to-magic"])


def test_real_student_graph_is_rewritten_exactly(tmp_path):
    """The exported student (torch -> ONNX) carries torch's Resize; the rewrite catches every one."""
    torch = pytest.importorskip("torch")
    from btseg.models import create_model

    torch.manual_seed(0)
    model = create_model("simplified_unet", widths=(8, 16, 32, 64)).eval()
    path = tmp_path / "s.onnx"
    torch.onnx.export(model, torch.randn(1, 1, 64, 64), str(path), input_names=["x"], output_names=["y"],
                      dynamo=False, opset_version=18)
    ref = onnx.load(str(path))
    new = onnx.load(str(path))
    assert rewrite.apply(new, [rewrite.NEAREST2X]) == {rewrite.NEAREST2X: 3}
    x = np.random.default_rng(1).standard_normal((1, 1, 64, 64)).astype(np.float32)
    np.testing.assert_array_equal(run(new, x), run(ref, x))
