"""Model size and compute: parameters and MACs.

Convention (say it every time a number is printed): **MACs, FLOPs = 2 x MACs, counted by
torch FlopCounterMode (conv/matmul only)**.  Papers (fvcore, thop, ptflops, mmcv) usually
print MACs and call them "FLOPs"; the Attention U-Net's published "66.63 GFLOPs" at 256x256
is MACs.  Element-wise ops (BN, ReLU, sigmoid, add, upsample) are not counted by either
counter here, so the torch count and the ONNX-graph count are comparable.

Example::

    >>> from btseg.models import AttentionUNet
    >>> round(count_macs(AttentionUNet(widths=(8, 16)), (64, 64)) / 1e6, 1)  # doctest: +SKIP
    >>> count_params(AttentionUNet())                                       # doctest: +SKIP
    34877421
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn

CONVENTION = "MACs, FLOPs = 2 x MACs, counted by torch FlopCounterMode (conv/matmul only)"


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them by default; BN running stats are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: Sequence[int] = (256, 256), in_channels: int = 1) -> int:
    """Multiply-accumulates of one forward pass at batch 1.

    MACs, FLOPs = 2 x MACs, counted by torch FlopCounterMode (conv/matmul only):
    FlopCounterMode reports 2 x MACs for convolution, transposed convolution and matmul,
    so MACs = its total / 2.  The model is run once on zeros in eval mode, no grad.
    """
    from torch.utils.flop_counter import FlopCounterMode

    h, w = int(input_size[0]), int(input_size[1])
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, in_channels, h, w, device=device)
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


def onnx_macs(onnx_path: str | Path) -> int:
    """MACs of Conv / ConvTranspose / Gemm / MatMul nodes of an ONNX graph (cross-check).

    Shapes come from ONNX shape inference, so the graph needs static input shapes (our
    exports use batch 1 or a symbolic batch, which counts as 1).  QDQ INT8 graphs count the
    same as FP32: QuantizeLinear/DequantizeLinear are not MACs.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        # symbolic dims (batch) count as 1: we report batch-1 figures
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    # constant shapes behind DequantizeLinear (QDQ) weights
    for node in g.node:
        if node.op_type in ("DequantizeLinear", "Identity", "Cast") and node.input[0] in shapes:
            shapes.setdefault(node.output[0], shapes[node.input[0]])
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = list(numpy_helper.to_array(a.t).shape)

    total = 0
    for node in g.node:
        op = node.op_type
        if op in ("Conv", "ConvTranspose"):
            w = shapes.get(node.input[1])
            out = shapes.get(node.output[0])
            inp = shapes.get(node.input[0])
            if not w or not out or not inp:
                raise ValueError(f"{onnx_path}: no shape for {op} node {node.name!r}; cannot count MACs")
            k = math.prod(w[2:])
            if op == "Conv":
                # out elements x (cin/groups x kernel): w is [cout, cin/groups, k...]
                total += math.prod(out) * w[1] * k
            else:
                # each input element scatters into cout/groups x kernel outputs: w is [cin, cout/groups, k...]
                total += math.prod(inp) * w[1] * k
        elif op in ("Gemm", "MatMul"):
            a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
            if not a or not out:
                raise ValueError(f"{onnx_path}: no shape for {op} node {node.name!r}; cannot count MACs")
            kdim = a[-1] if not (op == "Gemm" and _attr(node, "transA", 0)) else a[-2]
            total += math.prod(out) * kdim
    return int(total)


def _attr(node, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default
