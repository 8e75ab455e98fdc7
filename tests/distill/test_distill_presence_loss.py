"""The image-level presence term of the supervised loss, and KD under mixed precision."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.distill.losses import (LABEL_INDEX, PRESENCE_TOPK_FRAC, DistillObjective, SupervisedObjective,
                                  presence_logits, presence_loss, routed_targets, seg_loss, teacher_weights)
from btseg.models import create_model


def test_presence_logits_pool_the_top_pixels_of_each_image():
    logits = torch.full((2, 1, 100, 100), -5.0)
    logits[0, 0, :2, :10] = 7.0  # 20 pixels = PRESENCE_TOPK_FRAC of 10 000
    assert round(PRESENCE_TOPK_FRAC * 100 * 100) == 20
    assert presence_logits(logits).tolist() == [7.0, -5.0]
    assert presence_logits(logits, frac=0.0).tolist() == [7.0, -5.0]  # at least one pixel


def test_a_confident_blob_on_a_normal_image_costs_what_a_missed_lesion_does():
    """Pixel BCE + Dice barely see 2% false pixels on a normal image; the presence term
    charges the whole image for them."""
    y = torch.zeros(1, 1, 64, 64)
    clean = torch.full_like(y, -8.0)
    blob = clean.clone()
    blob[..., :9, :9] = 8.0  # ~2% of the image
    base = seg_loss(blob, y) - seg_loss(clean, y)
    with_term = seg_loss(blob, y, presence_weight=1.0) - seg_loss(clean, y, presence_weight=1.0)
    assert with_term > base + 7.0  # BCE of logit 8 against "no lesion" is ~8
    lesion = y.clone()
    lesion[..., :9, :9] = 1
    assert presence_loss(blob, lesion) < 1e-3  # a found lesion costs nothing more


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(4, 40), st.floats(0.0, 20.0), st.integers(0, 2**31 - 1))
def test_presence_weight_zero_is_the_old_loss_and_the_term_is_finite_and_non_negative(n, side, weight, seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, 1, side, side, generator=g) * 30  # saturated too
    y = (torch.rand(n, 1, side, side, generator=g) > 0.8).float()
    y[0] = 0  # a normal image in every batch
    assert torch.equal(seg_loss(logits, y, 0.0), seg_loss(logits, y))
    term = presence_loss(logits, y)
    assert torch.isfinite(term) and term >= 0
    assert torch.allclose(seg_loss(logits, y, weight), seg_loss(logits, y) + weight * term)


def test_objectives_pass_the_weight_and_backpropagate():
    torch.manual_seed(0)
    x, y = torch.randn(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    model = create_model("simplified_unet", widths=[8, 16])
    plain, _ = SupervisedObjective(model)(x, y, torch.tensor([2, 2]))
    weighted, _ = SupervisedObjective(model, presence_weight=2.0)(x, y, torch.tensor([2, 2]))
    assert weighted > plain
    teachers = [create_model("attention_unet", widths=[8, 16, 32]) for _ in range(2)]
    obj = DistillObjective(model, teachers, "dual", "routed", 1.0, 1.0, 2.0, presence_weight=2.0)
    loss, _ = obj(x, y, torch.tensor([LABEL_INDEX["normal"]] * 2))
    loss.backward()
    assert model.head.weight.grad is not None


@pytest.mark.parametrize("labels", [("benign", "normal", "malignant"), ("normal", "normal", "normal")])
def test_routed_targets_under_autocast_keep_the_teachers_dtype(labels):
    """Regression (found on an H200 by benchmarks/gpu_smoke.py): under CUDA autocast the
    teachers answer in float16 and the float32 routing weights of normal images (0.5)
    promoted the product, so index_add_ refused it and dual KD could not train on a GPU.
    CPU autocast (bfloat16) takes the same path."""
    torch.manual_seed(0)
    teachers = [create_model("attention_unet", widths=[8, 16, 32]).eval() for _ in range(2)]
    x = torch.randn(len(labels), 1, 16, 16)
    w = teacher_weights(torch.tensor([LABEL_INDEX[n] for n in labels]), "routed")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, feats = routed_targets(teachers, x, w)
        student = create_model("simplified_unet", widths=[8, 16])
        obj = DistillObjective(student, teachers, "dual", "routed", 1.0, 1.0, 2.0, presence_weight=1.0)
        loss, _ = obj(x, torch.zeros(len(labels), 1, 16, 16), torch.tensor([LABEL_INDEX[n] for n in labels]))
    assert logits.dtype == torch.bfloat16 and all(f.dtype == torch.bfloat16 for f in feats)
    assert torch.isfinite(loss)
    loss.backward()
