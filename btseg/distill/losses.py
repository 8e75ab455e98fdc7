"""Segmentation and knowledge-distillation losses, and the dual-path teacher routing.

The student loss (LightBTSeg, dual-path joint KD)::

    L = BCE + softDice + gamma * BCE(topk(s), y_img)     (supervised)
      + alpha * T^2 * KL(Bern(sigmoid(t/T)) || Bern(sigmoid(s/T)))   (response KD, per pixel)
      + beta  * mean_stages || norm(A_k(s_k)) - norm(t_k) ||^2        (feature KD)

where ``t`` is the *routed* teacher: the benign teacher for benign images, the malignant
teacher for malignant ones, and the mean of both for normal images.

Choices the paper leaves open, fixed here:

* the mean of two teachers is the mean of their **logits** (and of their raw features):
  for Bernoulli outputs that is the normalised geometric mean of the two distributions,
  independent of the temperature, and it keeps the KD loss exactly zero for a student
  that reproduces the target;
* the supervised term has an **image-level presence term** (``gamma``,
  ``TrainConfig.presence_weight``): the mean of each image's top-k pixel logits (the k most
  lesion-like pixels, k = :data:`PRESENCE_TOPK_FRAC` of the image) is one logit per image,
  trained with BCE against "this image has a lesion".  Pixel BCE and soft Dice spend almost
  nothing on a confident blob over 2% of a *normal* image, which is what the runtime's
  "no lesion" decision (:mod:`btseg.runtime.presence`, a peak score) then cannot separate
  from a lesion; this term puts a whole image's weight on it.  It reads the segmentation
  output itself, so no new model output (and nothing new to export) is needed;
* feature KD is **normalised MSE**: each map (student after its 1x1 adapter, and teacher)
  is standardised over (C, H, W) per sample before the MSE, so every stage contributes on
  the same scale whatever the teacher's activation magnitudes, and one ``beta`` serves all
  presets.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from btseg.errors import ConfigError

LABEL_INDEX = {"benign": 0, "malignant": 1, "normal": 2}
# share of an image's pixels pooled into its presence logit: a fifth of 1% of the image
# (about the smallest phantom lesion), so on a lesion image the pool lies inside the lesion
PRESENCE_TOPK_FRAC = 0.002


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged; ``smooth`` makes an empty target with an empty
    prediction cost nothing (normal images)."""
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + smooth) / (p.sum(1) + t.sum(1) + smooth)).mean()


def presence_logits(logits: torch.Tensor, frac: float = PRESENCE_TOPK_FRAC) -> torch.Tensor:
    """One logit per image: the mean of its ``frac`` (at least one) highest pixel logits."""
    flat = logits.float().flatten(1)
    k = max(1, min(flat.shape[1], round(frac * flat.shape[1])))
    return flat.topk(k, dim=1).values.mean(1)


def presence_loss(logits: torch.Tensor, target: torch.Tensor, frac: float = PRESENCE_TOPK_FRAC) -> torch.Tensor:
    """BCE of :func:`presence_logits` against "the target mask is not empty", mean over images."""
    return head_loss(presence_logits(logits, frac), target)


def head_loss(z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE of one presence logit per image ``z`` ((N,) or (N, 1)) against "the target mask
    is not empty", mean over images."""
    has = (target.flatten(1) > 0).any(1).float()
    return F.binary_cross_entropy_with_logits(z.float().flatten(), has)


def seg_loss(logits: torch.Tensor, target: torch.Tensor, presence_weight: float = 0.0) -> torch.Tensor:
    """The supervised term: BCE with logits + soft Dice (+ ``presence_weight`` x
    :func:`presence_loss` when it is > 0)."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float()) + soft_dice_loss(logits, target)
    return loss + presence_weight * presence_loss(logits, target) if presence_weight > 0 else loss


def supervised(model: nn.Module, x: torch.Tensor, y: torch.Tensor, presence_weight: float, head_weight: float,
               features: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """``(loss, logits, features)``: :func:`seg_loss` of ``model`` on ``x``, plus
    ``head_weight`` x :func:`head_loss` of its presence head's logit when it has one
    (``forward_presence``, :class:`btseg.models.unet_base.UNetSkeleton`)."""
    if getattr(model, "presence_head", False):
        logits, feats, head = model.forward_presence(x)
        loss = seg_loss(logits, y, presence_weight)
        return (loss + head_weight * head_loss(head, y) if head_weight > 0 else loss), logits, feats
    if features:
        logits, feats = model.forward_features(x)
    else:
        logits, feats = model(x), []
    return seg_loss(logits, y, presence_weight), logits, feats


def response_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Pixel-wise binary KL(teacher || student) of temperature-softened sigmoids, times T^2.

    Computed from log-sigmoids of both logit maps, so it is exactly 0 when they are equal
    and stays finite for saturated logits.
    """
    s = student_logits.float() / temperature
    t = teacher_logits.float() / temperature
    pt = torch.sigmoid(t)
    kl = pt * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - pt) * (F.logsigmoid(-t) - F.logsigmoid(-s))
    return kl.mean() * temperature ** 2


def _standardise(f: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return F.layer_norm(f.float(), f.shape[1:], eps=eps)


class FeatureAdapters(nn.Module):
    """One 1x1 conv per matched stage, student channels -> teacher channels.

    Stages are paired from the shallow end (the decoder output the head reads), so a student
    shallower than its teacher still matches the teacher's last stages.
    """

    def __init__(self, student_channels: Sequence[int], teacher_channels: Sequence[int]) -> None:
        super().__init__()
        n = min(len(student_channels), len(teacher_channels))
        if n == 0:
            raise ConfigError("feature KD: the student or the teacher exposes no feature stage")
        self.pairs = list(zip(student_channels[-n:], teacher_channels[-n:]))
        self.convs = nn.ModuleList(nn.Conv2d(cs, ct, 1) for cs, ct in self.pairs)

    @classmethod
    def identity(cls, channels: Sequence[int]) -> "FeatureAdapters":
        """Adapters that pass features through unchanged (tests, equal-width pairs)."""
        a = cls(channels, channels)
        for conv in a.convs:
            nn.init.zeros_(conv.bias)
            with torch.no_grad():
                conv.weight.copy_(torch.eye(conv.in_channels)[:, :, None, None])
        return a

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, feats[-len(self.convs):])]


def feature_kd(student_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor],
               adapters: FeatureAdapters | None = None) -> torch.Tensor:
    """Normalised MSE between adapted student features and teacher features, mean over stages.

    Without ``adapters`` the stages are compared as they are (channels must agree).  A
    student map of another spatial size is resized (bilinear) to the teacher's.
    """
    s = adapters(student_feats) if adapters is not None else list(student_feats)
    t = list(teacher_feats)[-len(s):]
    losses = []
    for fs, ft in zip(s, t):
        if fs.shape[-2:] != ft.shape[-2:]:
            fs = F.interpolate(fs, size=ft.shape[-2:], mode="bilinear", align_corners=False)
        if fs.shape[1] != ft.shape[1]:
            raise ConfigError(f"feature KD: student stage has {fs.shape[1]} channels, teacher {ft.shape[1]}; "
                              "use FeatureAdapters")
        losses.append(F.mse_loss(_standardise(fs), _standardise(ft)))
    return torch.stack(losses).mean()


def teacher_weights(labels: torch.Tensor, mode: str) -> torch.Tensor:
    """(N, 2) weights of (benign, malignant) teacher per sample.

    ``routed``: benign -> (1, 0), malignant -> (0, 1), normal -> (0.5, 0.5);
    ``benign`` / ``malignant`` / ``mean``: the same weights for every sample.
    ``labels`` holds :data:`LABEL_INDEX` codes.
    """
    n = labels.shape[0]
    fixed = {"benign": (1.0, 0.0), "malignant": (0.0, 1.0), "mean": (0.5, 0.5)}
    if mode in fixed:
        return torch.tensor(fixed[mode]).expand(n, 2).clone()
    if mode != "routed":
        raise ConfigError(f"teachers {mode!r}: expected routed, benign, malignant or mean")
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    return table[labels.long().cpu()]


@torch.no_grad()
def routed_targets(teachers: Sequence[nn.Module], x: torch.Tensor, weights: torch.Tensor,
                   need_features: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The routed teacher's logits and features for a batch, under no_grad.

    Each teacher runs only on the samples that give it a non-zero weight; the target is
    the weighted sum, so a weight of exactly 1 returns that teacher's output bit for bit.
    """
    logits: torch.Tensor | None = None
    feats: list[torch.Tensor] = []
    w = weights.to(x.device)
    for k, teacher in enumerate(teachers):
        idx = torch.nonzero(w[:, k] > 0).flatten()
        if idx.numel() == 0:
            continue
        out, fs = teacher.forward_features(x[idx])
        wk = w[idx, k].view(-1, 1, 1, 1)
        ones = bool((wk == 1).all())  # all-ones weights skip the multiply: single-teacher targets are exact
        if logits is None:
            logits = torch.zeros((x.shape[0], *out.shape[1:]), dtype=out.dtype, device=x.device)
            feats = [torch.zeros((x.shape[0], *f.shape[1:]), dtype=f.dtype, device=x.device) for f in fs]
        # under autocast the teachers answer in float16/bfloat16: weight in that dtype, or the
        # float32 weights promote the product and index_add_ refuses the mixed types
        logits.index_add_(0, idx, out if ones else out * wk.to(out.dtype))
        if need_features:
            for acc, f in zip(feats, fs):
                acc.index_add_(0, idx, f if ones else f * wk.to(f.dtype))
    if logits is None:
        raise ConfigError("routing: no teacher has a non-zero weight for this batch")
    return logits, feats if need_features else []


class SupervisedObjective(nn.Module):
    """Teacher training (and the no-KD student): ``forward(x, y, labels) -> (loss, parts)``."""

    def __init__(self, model: nn.Module, presence_weight: float = 0.0, head_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.presence_weight, self.head_weight = presence_weight, head_weight

    def forward(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss, _, _ = supervised(self.model, x, y, self.presence_weight, self.head_weight)
        return loss, {"seg": loss.detach()}


class DistillObjective(nn.Module):
    """The student's loss: supervised + alpha * response KD + beta * feature KD.

    The teachers are kept in a plain tuple, not registered as submodules, so they are not
    in this module's ``state_dict``/``parameters`` (nothing to checkpoint, nothing for DDP
    to synchronise); they are frozen and put in eval mode here, whatever their state.
    """

    def __init__(self, student: nn.Module, teachers: Sequence[nn.Module], kd: str, teacher_mode: str,
                 alpha: float, beta: float, temperature: float, presence_weight: float = 0.0,
                 head_weight: float = 1.0) -> None:
        super().__init__()
        self.model = student
        self.presence_weight, self.head_weight = presence_weight, head_weight
        self.kd, self.teacher_mode = kd, teacher_mode
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.use_response = kd in ("response", "dual") and alpha > 0
        self.use_feature = kd in ("feature", "dual") and beta > 0
        for t in teachers:
            t.eval().requires_grad_(False)
        self.teachers = tuple(teachers)
        self.adapters = (FeatureAdapters(student.feature_channels, teachers[0].feature_channels)
                         if self.use_feature else None)

    def to(self, *args, **kwargs):  # the unregistered teachers follow the student's device
        for t in self.teachers:
            t.to(*args, **kwargs)
        return super().to(*args, **kwargs)

    def train(self, mode: bool = True):  # teachers stay in eval mode (BN statistics frozen)
        super().train(mode)
        for t in self.teachers:
            t.eval()
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        seg, logits, feats = supervised(self.model, x, y, self.presence_weight, self.head_weight, features=True)
        parts = {"seg": seg.detach()}
        loss = seg
        if self.use_response or self.use_feature:
            w = teacher_weights(labels, self.teacher_mode)
            t_logits, t_feats = routed_targets(self.teachers, x, w, need_features=self.use_feature)
            if self.use_response:
                r = response_kd(logits, t_logits, self.temperature)
                loss = loss + self.alpha * r
                parts["kd_resp"] = r.detach()
            if self.use_feature:
                f = feature_kd(feats, t_feats, self.adapters)
                loss = loss + self.beta * f
                parts["kd_feat"] = f.detach()
        return loss, parts
