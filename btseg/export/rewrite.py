"""Exact ONNX graph rewrites applied before a backend's INT8 quantization (part of its recipe).

Each rewrite replaces a subgraph with one that computes **the same values bit for bit** but
that a given runtime executes faster; it is named in the recipe (``graph_rewrites`` in the
manifest) and checked by running both graphs on ONNX Runtime in the tests.

``nearest2x-nhwc-expand``
    ONNX Runtime runs an INT8 QDQ graph channels-last (its NHWC transformer turns every
    ``QLinearConv`` and its neighbours to NHWC).  Its ``Resize`` has a fast 2x-nearest path
    only for NCHW scales ``[1, 1, 2, 2]``; on NHWC ``[1, 2, 2, 1]`` it falls back to a
    per-element index loop: 8.5 of 54.5 ms of the paper student's INT8 time at 256 px (ORT
    1.32, 2 threads), against 1.5 ms for the FP32 graph's NCHWc ``Upsample``.  The rewrite
    spells the upsample channels-last with data-movement ops ORT runs on uint8 directly::

        Transpose(0,2,3,1) -> Reshape(N,H,1,W,1,C) -> Expand(1,1,2,1,2,1) -> Reshape(N,2H,2W,C) -> Transpose(0,3,1,2)

    ORT's transpose optimizer cancels the two Transposes against the layout transposes of
    its NHWC graph, so what runs is a broadcast copy of contiguous ``C``-byte rows (0.56 ms
    for all four upsamples).  Only ``Resize`` nodes that are exactly a 2x nearest upsample
    (mode ``nearest``, ``asymmetric`` coordinates with ``floor``, scales ``[1, 1, 2, 2]``,
    4-D input of known H, W, C) are rewritten; any other ``Resize`` is left alone.
    The FP32 graph keeps its ``Resize``: ORT runs it in NCHWc, where the rewrite is slower
    (measured 1.03-1.07x), so this belongs to the INT8 recipe only.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

NEAREST2X = "nearest2x-nhwc-expand"


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _const(model: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    if not name:
        return None
    for i in model.graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            a = next((a for a in n.attribute if a.name == "value"), None)
            return None if a is None else numpy_helper.to_array(a.t)
    return None


def _static_shape(value_info: dict[str, Any], name: str) -> list[int | None] | None:
    v = value_info.get(name)
    if v is None or not v.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]


def _is_nearest2x(model: Any, node: Any, shape: list[int | None] | None) -> bool:
    a = _attrs(node)
    if a.get("mode", "nearest") != "nearest" or a.get("coordinate_transformation_mode", "half_pixel") != "asymmetric":
        return False
    if a.get("nearest_mode", "round_prefer_floor") != "floor" or a.get("antialias", 0) or a.get("axes"):
        return False
    if shape is None or len(shape) != 4 or any(d is None or d < 1 for d in shape[1:]):
        return False
    scales = _const(model, node.input[2]) if len(node.input) > 2 else None
    sizes = _const(model, node.input[3]) if len(node.input) > 3 else None
    if scales is not None and scales.size:
        return scales.shape == (4,) and [float(s) for s in scales] == [1.0, 1.0, 2.0, 2.0]
    if sizes is not None and sizes.size:
        _, c, h, w = shape
        return sizes.shape == (4,) and shape[0] is not None and list(sizes) == [shape[0], c, 2 * h, 2 * w]
    return False


def nearest2x_to_nhwc_expand(model: Any) -> int:
    """Rewrite every exact 2x nearest ``Resize`` of ``model`` in place (see the module
    docstring); returns how many were rewritten.  The batch dimension may be dynamic."""
    from onnx import helper, numpy_helper, shape_inference

    inferred = shape_inference.infer_shapes(model)
    value_info = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    g = model.graph
    new, count = [], 0
    for node in g.node:
        shape = _static_shape(value_info, node.input[0]) if node.op_type == "Resize" else None
        if node.op_type != "Resize" or not _is_nearest2x(model, node, shape):
            new.append(node)
            continue
        _, c, h, w = shape  # type: ignore[misc]
        p, x, y = f"{node.name or node.output[0]}_nhwc2x", node.input[0], node.output[0]

        def const(suffix: str, values: list[int]) -> str:
            g.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), p + suffix))
            return p + suffix

        # Reshape's 0 copies the batch dimension, so a dynamic batch stays dynamic
        new += [helper.make_node("Transpose", [x], [p + "_nhwc"], perm=[0, 2, 3, 1], name=p + "_to_nhwc"),
                helper.make_node("Reshape", [p + "_nhwc", const("_s6", [0, h, 1, w, 1, c])], [p + "_6d"],
                                 name=p + "_split"),
                helper.make_node("Expand", [p + "_6d", const("_rep", [1, 1, 2, 1, 2, 1])], [p + "_rep6d"],
                                 name=p + "_repeat"),
                helper.make_node("Reshape", [p + "_rep6d", const("_s4", [0, 2 * h, 2 * w, c])], [p + "_up"],
                                 name=p + "_merge"),
                helper.make_node("Transpose", [p + "_up"], [y], perm=[0, 3, 1, 2], name=p + "_to_nchw")]
        count += 1
    if count:
        del g.node[:]
        g.node.extend(new)
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        live = [n for n in g.node if n.op_type != "Constant" or n.output[0] in used]
        del g.node[:]
        g.node.extend(live)
        keep = [i for i in g.initializer if i.name in used]
        del g.initializer[:]
        g.initializer.extend(keep)
    return count


#: Rewrites by name, as recipes list them.
REWRITES: dict[str, Callable[[Any], int]] = {NEAREST2X: nearest2x_to_nhwc_expand}


def apply(model: Any, names: tuple[str, ...] | list[str]) -> dict[str, int]:
    """Apply the named rewrites in order; returns how many nodes each rewrote (for the manifest).

    Raises:
        ValueError: an unknown rewrite name (a programming error in a recipe).
    """
    unknown = [n for n in names if n not in REWRITES]
    if unknown:
        raise ValueError(f"unknown graph rewrite(s) {unknown}; known: {sorted(REWRITES)}")
    return {n: REWRITES[n](model) for n in names}
