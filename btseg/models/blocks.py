"""Building blocks shared by every btseg architecture.

All blocks are conv + BN + ReLU sequences and elementwise ops: what ONNX Runtime,
OpenVINO and TensorRT fuse well.  No data-dependent Python control flow.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class ConvBNReLU(nn.Sequential):
    """k x k convolution (no bias: BN follows), batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, k: int = 3, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """The classic U-Net block: two 3x3 ConvBNReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(ConvBNReLU(cin, cout), ConvBNReLU(cout, cout))


class Bottleneck(nn.Module):
    """Residual bottleneck: 1x1 reduce, 3x3, 1x1 expand, plus a (projected) shortcut.

    Args:
        cin, cout: input and output channels.
        expansion: ``cout / mid``; the 3x3 runs at ``mid = max(cout // expansion, 8)``.
    """

    def __init__(self, cin: int, cout: int, expansion: int = 4) -> None:
        super().__init__()
        mid = max(cout // expansion, 8)
        self.body = nn.Sequential(ConvBNReLU(cin, mid, 1), ConvBNReLU(mid, mid, 3), ConvBNReLU(mid, cout, 1, relu=False))
        self.shortcut = nn.Identity() if cin == cout else ConvBNReLU(cin, cout, 1, relu=False)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class UpConv(nn.Sequential):
    """2x nearest upsampling then a ConvBNReLU (k=3 for the teacher, k=1 allowed for students).

    With ``k == 1`` the ConvBNReLU runs *before* the upsampling.  A 1x1 conv, BN and ReLU act on
    each pixel alone, and nearest upsampling copies pixels, so the two orders give the same
    output (bit for bit in inference; in training the batch mean and biased variance are
    identical too, only the Bessel factor of the running-variance update differs).  The conv then
    runs at a quarter of the pixels (4x fewer MACs) and the upsample copies ``cout`` channels
    instead of ``cin``.  Why it matters: ONNX Runtime's INT8 graph runs in NHWC, where its
    nearest Resize has no fast path (a per-element index loop); see docs/bench.md.  The module
    layout, and so the state-dict keys, are unchanged.
    """

    def __init__(self, cin: int, cout: int, k: int = 3) -> None:
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvBNReLU(cin, cout, k))
        self.pointwise = k == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up, conv = self[0], self[1]
        return up(conv(x)) if self.pointwise else conv(up(x))


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018) on a skip connection.

    ``psi = sigmoid(BN(conv1x1(relu(BN(W_g g) + BN(W_x x)))))``; returns ``x * psi``.
    ``g`` (gating, from the decoder) and ``x`` (skip) have the same spatial size.
    """

    def __init__(self, g_ch: int, x_ch: int, inter_ch: int) -> None:
        super().__init__()
        self.w_g = nn.Sequential(nn.Conv2d(g_ch, inter_ch, 1, bias=False), nn.BatchNorm2d(inter_ch))
        self.w_x = nn.Sequential(nn.Conv2d(x_ch, inter_ch, 1, bias=False), nn.BatchNorm2d(inter_ch))
        self.psi = nn.Sequential(nn.Conv2d(inter_ch, 1, 1, bias=False), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x * self.psi(self.relu(self.w_g(g) + self.w_x(x)))
