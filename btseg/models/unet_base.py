"""One U-Net skeleton; the teacher, the student and the plain-U-Net baseline differ only
in the block they put at each level and whether the skips carry attention gates."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from btseg.models.blocks import AttentionGate, UpConv
from btseg.contract import ModelContract, check_widths, size_divisor

BlockFactory = Callable[[int, int], nn.Module]


class UNetSkeleton(nn.Module):
    """Encoder of ``len(widths)`` levels, decoder with optional attention-gated skips.

    Args:
        widths: channels per level, shallow to deep (the last is the bottleneck).
        block: ``block(cin, cout)`` builds each encoder/decoder block.
        in_channels, out_channels: image channels and logit channels.
        attention: put an :class:`AttentionGate` on every skip connection.
        up_kernel: kernel of the conv after each 2x upsampling.

    ``forward(x)`` returns logits (N, out_channels, H, W); ``forward_features(x)`` also
    returns the bottleneck and every decoder stage's output, deep to shallow, which is
    what feature distillation matches.  H and W must be divisible by ``2**(len(widths)-1)``.

    ``presence_head=True`` adds an image-level "is there a lesion" logit ``b``: one linear
    layer on the global mean and max of the bottleneck and the first decoder stage (the
    whole image's context: a lesion's posterior column, a look-alike's layer).  It gates the
    pixel logits ``a`` in log space, ``a + log sigmoid(b)``, so the model keeps its one
    output (export, every backend and the presence calibration are unchanged) and an image
    the head calls normal has every pixel pushed down.  :meth:`forward_presence` returns
    ``b`` too, for its image-level loss (:class:`btseg.distill.losses.SupervisedObjective`).
    """

    def __init__(self, widths: Sequence[int], block: BlockFactory, in_channels: int = 1,
                 out_channels: int = 1, attention: bool = True, up_kernel: int = 3,
                 presence_head: bool = False) -> None:
        super().__init__()
        widths = check_widths(widths, type(self).__name__)
        self.widths = widths
        self.encoders = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.encoders.append(block(cin, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for deep, shallow in zip(reversed(widths[1:]), reversed(widths[:-1])):
            self.ups.append(UpConv(deep, shallow, up_kernel))
            self.gates.append(AttentionGate(shallow, shallow, max(shallow // 2, 1)) if attention else nn.Identity())
            self.decoders.append(block(2 * shallow, shallow))
        self.head = nn.Conv2d(widths[0], out_channels, 1)
        self.attention = attention
        self.presence_head = bool(presence_head)
        if self.presence_head:
            pooled = 2 * (widths[-1] + (widths[-2] if len(widths) > 1 else 0))
            self.presence = nn.Linear(pooled, out_channels)

    @classmethod
    def contract(cls, widths: Sequence[int] | None = None, **_: object) -> ModelContract:
        """The contract of this model built with ``widths`` (default: its paper widths)."""
        import inspect

        if widths is None:
            widths = inspect.signature(cls.__init__).parameters["widths"].default
        name = getattr(cls, "model_name", cls.__name__)
        w = check_widths(widths, name)
        return ModelContract(name, size_divisor(name, w), (w[-1], *reversed(w[:-1])))

    @property
    def size_divisor(self) -> int:
        """Each input side must be a multiple of this (one 2x pooling per level below the top)."""
        return self.contract(self.widths).size_divisor

    @property
    def feature_channels(self) -> list[int]:
        """Channels of the tensors :meth:`forward_features` returns, deep to shallow."""
        return [self.widths[-1], *reversed(self.widths[:-1])]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        logits, feats, _ = self.forward_presence(x)
        return logits, feats

    def forward_presence(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """``(logits, features, presence logit b (N, out_channels) or None)``; with a
        presence head the logits are already gated by ``b`` (see the class docstring)."""
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else self.pool(x))
            skips.append(x)
        feats = [x]
        for up, gate, dec, skip in zip(self.ups, self.gates, self.decoders, reversed(skips[:-1])):
            g = up(x)
            s = gate(g, skip) if self.attention else skip
            x = dec(torch.cat([s, g], dim=1))
            feats.append(x)
        logits = self.head(x)
        if not self.presence_head:
            return logits, feats, None
        pooled = torch.cat([torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1) for f in feats[:2]], 1)
        b = self.presence(pooled)
        return logits + F.logsigmoid(b)[:, :, None, None], feats, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
