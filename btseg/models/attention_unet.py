"""The teacher: Attention U-Net (Oktay et al. 2018, arXiv 1804.03999)."""

from __future__ import annotations

from typing import Sequence

from btseg.models.blocks import DoubleConv
from btseg.models.registry import register_model
from btseg.models.unet_base import UNetSkeleton

PAPER_WIDTHS = (64, 128, 256, 512, 1024)


@register_model("attention_unet")
class AttentionUNet(UNetSkeleton):
    """Attention U-Net in the widely used layout (double 3x3 conv blocks, 2x upsampling +
    3x3 conv, an attention gate on every skip with half the skip's width).

    At the default ``widths=(64, 128, 256, 512, 1024)`` it has 34.87 M parameters and
    about 66.6 GMACs at 256x256, the published figures.

    Args:
        widths: channels per level, shallow to deep; the depth is ``len(widths)``.
        in_channels: image channels (1 for B-mode).
        out_channels: logit channels (1: lesion vs background).

    Example::

        >>> import torch
        >>> m = AttentionUNet(widths=(8, 16, 32))
        >>> m(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(self, widths: Sequence[int] = PAPER_WIDTHS, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__(widths, DoubleConv, in_channels, out_channels, attention=True, up_kernel=3)


@register_model("unet")
class UNet(UNetSkeleton):
    """Plain U-Net (Ronneberger et al. 2015) in the same layout, no attention: a baseline."""

    def __init__(self, widths: Sequence[int] = PAPER_WIDTHS, in_channels: int = 1, out_channels: int = 1) -> None:
        super().__init__(widths, DoubleConv, in_channels, out_channels, attention=False, up_kernel=3)
