"""The student: LightBTSeg's "Simplified U-Net" (Guo et al., arXiv 2311.11086).

The Attention U-Net with every double convolution replaced by a residual bottleneck
(1x1 reduce, 3x3, 1x1 expand); the attention gates stay.  The paper gives no widths; the
``paper`` configuration (the defaults: widths 32..512, expansion 2, 1x1 conv after each
upsampling) is chosen to meet its published budget: 1.99 M parameters (paper: at most
2.2 M) and 3.08 GMACs at 256x256, 4.6% of the teacher's 66.35 (torch FlopCounterMode / 2).
The 1x1 conv after each upsampling runs before it (same output, see
:class:`~btseg.models.blocks.UpConv`); upsample-first it would be 3.48 GMACs.
"""

from __future__ import annotations

import functools
from typing import Sequence

from btseg.contract import SCALES, ModelContract, scale_widths
from btseg.models.blocks import Bottleneck
from btseg.models.registry import register_model
from btseg.models.unet_base import UNetSkeleton

PAPER_WIDTHS = (32, 64, 128, 256, 512)
SCALE_NAMES = tuple(SCALES["simplified_unet"])  # n, s, m, l (l = PAPER_WIDTHS)


@register_model("simplified_unet")
class SimplifiedUNet(UNetSkeleton):
    """Simplified U-Net student.

    Args:
        widths: channels per level, shallow to deep.
        expansion: bottleneck expansion (the 3x3 runs at ``width / expansion`` channels).
        up_kernel: kernel of the conv after each upsampling (1 keeps the decoder cheap).
        in_channels, out_channels: image and logit channels.
        scale: ``n | s | m | l`` picks the widths (:data:`btseg.contract.SCALES`; ``l`` is the
            paper student); with ``widths`` too, both must agree.
        presence_head: add the image-level presence logit that gates the pixel logits
            (:class:`~btseg.models.unet_base.UNetSkeleton`).

    Example::

        >>> import torch
        >>> m = SimplifiedUNet(widths=(8, 16, 32))
        >>> m(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 1, 64, 64])
    """

    def __init__(self, widths: Sequence[int] | None = None, expansion: int = 2, up_kernel: int = 1,
                 in_channels: int = 1, out_channels: int = 1, scale: str | None = None,
                 presence_head: bool = False) -> None:
        block = functools.partial(Bottleneck, expansion=expansion)
        widths = scale_widths("simplified_unet", scale, widths) or PAPER_WIDTHS
        super().__init__(widths, block, in_channels, out_channels, attention=True, up_kernel=up_kernel,
                         presence_head=presence_head)
        self.scale = scale

    @classmethod
    def contract(cls, widths: Sequence[int] | None = None, scale: str | None = None, **_: object) -> ModelContract:
        """The contract at ``widths`` or ``scale`` (default: the paper widths, scale ``l``)."""
        return super().contract(scale_widths("simplified_unet", scale, widths) or PAPER_WIDTHS)
