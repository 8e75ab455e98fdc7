"""A UNeXt-style baseline (Valanarasu & Patel, MICCAI 2022, arXiv 2203.04967).

Three convolutional stages, then two tokenised-MLP stages (shifted MLP: channels split in
groups shifted by -2..2 pixels along W, a token-wise fc, a depthwise 3x3, GELU, the same shift
along H, a second fc, residual), and a decoder that *adds* each skip.  It is the small,
fast model a user would otherwise pick, trained here by the same loop on the same data so
that the student is judged against it.

Deviations from the paper, for deployment: token-wise fc layers are 1x1 convolutions on
NCHW maps (the same arithmetic without reshapes), LayerNorm is BatchNorm (folds into the
convolutions at export; it sits after each fc, not before the shift), and the shift is zero-filled pad + slice (static shapes).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from btseg.models.blocks import ConvBNReLU
from btseg.contract import ModelContract, check_widths, size_divisor
from btseg.models.registry import register_model

PAPER_WIDTHS = (16, 32, 128, 160, 256)


def shift(x: torch.Tensor, groups: int, dim: int) -> torch.Tensor:
    """Shift channel groups by -g//2 .. g//2 pixels along ``dim`` (2 = H, 3 = W), zero fill."""
    size = x.shape[dim]
    out = []
    for chunk, s in zip(torch.chunk(x, groups, dim=1), range(-(groups // 2), groups // 2 + 1)):
        if s == 0:
            out.append(chunk)
            continue
        pad = [0, 0, 0, 0]  # (W left, W right, H top, H bottom)
        pad[(0 if dim == 3 else 2) + (0 if s > 0 else 1)] = abs(s)
        padded = F.pad(chunk, pad)
        out.append(padded.narrow(dim, 0 if s > 0 else abs(s), size))
    return torch.cat(out, dim=1)


class ShiftedMLP(nn.Module):
    """Tokenised MLP block: ``x + BN(fc2(shift_H(GELU(dw(BN(fc1(shift_W(x))))))))``.

    The paper pre-normalises with LayerNorm; here BatchNorm follows each fc, where export
    folds it into the convolution (a norm before the shift could not be folded).
    """

    def __init__(self, channels: int, mlp_ratio: int = 1, groups: int = 5) -> None:
        super().__init__()
        hidden = channels * mlp_ratio
        self.fc1 = nn.Sequential(nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Sequential(nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc1(shift(x, self.groups, dim=3))
        y = self.fc2(shift(self.act(self.dw(y)), self.groups, dim=2))
        return x + y


@register_model("unext")
class UNeXt(nn.Module):
    """UNeXt-style baseline; input sides must be divisible by 32.

    Args:
        widths: five widths: three conv stages, two tokenised-MLP stages (the last is the
            bottleneck at 1/32 resolution).
        in_channels, out_channels: image channels and logit channels.

    Example::

        >>> m = UNeXt(widths=(8, 16, 32, 48, 64))
        >>> m(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(self, widths: Sequence[int] = PAPER_WIDTHS, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__()
        c = check_widths(widths, "unext", levels=5)
        self.widths = c
        self.convs = nn.ModuleList([ConvBNReLU(in_channels, c[0]), ConvBNReLU(c[0], c[1]), ConvBNReLU(c[1], c[2])])
        # overlapping patch embedding: a stride-2 3x3 conv halves the resolution
        self.embeds = nn.ModuleList(nn.Sequential(nn.Conv2d(i, o, 3, stride=2, padding=1, bias=False),
                                                  nn.BatchNorm2d(o), nn.ReLU(inplace=True))
                                    for i, o in ((c[2], c[3]), (c[3], c[4])))
        self.tokens = nn.ModuleList([ShiftedMLP(c[3]), ShiftedMLP(c[4])])
        self.pool = nn.MaxPool2d(2)
        # decoder: bottleneck -> c3 (+tok MLP) -> c2 -> c1 -> c0 -> c0 at full size
        outs = [c[3], c[2], c[1], c[0], c[0]]
        ins = [c[4], c[3], c[2], c[1], c[0]]
        self.decoders = nn.ModuleList(ConvBNReLU(i, o) for i, o in zip(ins, outs))
        self.dtoken = ShiftedMLP(c[3])
        self.head = nn.Conv2d(c[0], out_channels, 1)

    @classmethod
    def contract(cls, widths: Sequence[int] = PAPER_WIDTHS, **_: object) -> ModelContract:
        """Three 2x poolings and two stride-2 patch embeddings: sides divisible by 32."""
        c = check_widths(widths, "unext", levels=5)
        return ModelContract("unext", size_divisor("unext", c), (c[4], c[3], c[2], c[1], c[0], c[0]))

    @property
    def size_divisor(self) -> int:
        return self.contract(self.widths).size_divisor

    @property
    def feature_channels(self) -> list[int]:
        return [self.widths[4], self.widths[3], self.widths[2], self.widths[1], self.widths[0], self.widths[0]]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for conv in self.convs:
            x = self.pool(conv(x))
            skips.append(x)
        for embed, tok in zip(self.embeds, self.tokens):
            x = tok(embed(x))
            skips.append(x)
        feats = [x]
        for i, (dec, skip) in enumerate(zip(self.decoders[:4], reversed(skips[:-1]))):
            x = F.interpolate(dec(x), scale_factor=2.0, mode="bilinear", align_corners=False) + skip
            if i == 0:
                x = self.dtoken(x)
            feats.append(x)
        x = F.interpolate(self.decoders[4](x), scale_factor=2.0, mode="bilinear", align_corners=False)
        feats.append(x)
        return self.head(x), feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
