"""KD losses vanish on a perfect student; routing picks the teacher of each label."""

from __future__ import annotations

import torch

from btseg.distill.losses import (LABEL_INDEX, DistillObjective, FeatureAdapters, feature_kd, response_kd,
                                  routed_targets, seg_loss, soft_dice_loss, teacher_weights)
from btseg.models import create_model


def _labels(*names: str) -> torch.Tensor:
    return torch.tensor([LABEL_INDEX[n] for n in names])


def test_response_kd_is_exactly_zero_for_equal_logits_and_positive_otherwise():
    t = torch.randn(3, 1, 16, 16) * 8  # saturated logits too
    assert response_kd(t.clone(), t, temperature=2.0).item() == 0.0
    assert response_kd(t + 1, t, temperature=2.0).item() > 0


def test_feature_kd_is_exactly_zero_for_equal_features():
    feats = [torch.randn(2, c, s, s) for c, s in ((32, 4), (16, 8), (8, 16))]
    assert feature_kd([f.clone() for f in feats], feats).item() == 0.0
    adapters = FeatureAdapters.identity([32, 16, 8])
    assert feature_kd([f.clone() for f in feats], feats, adapters).item() == 0.0
    assert feature_kd([f * -1 for f in feats], feats, adapters).item() > 0


def test_feature_kd_adapts_channels_and_size():
    s = [torch.randn(2, 4, 8, 8)]
    t = [torch.randn(2, 12, 16, 16)]
    loss = feature_kd(s, t, FeatureAdapters([4], [12]))
    assert loss.item() > 0 and torch.isfinite(loss)


def test_seg_loss_is_small_for_a_confident_correct_prediction():
    y = torch.zeros(2, 1, 8, 8)
    y[:, :, 2:6, 2:6] = 1
    assert seg_loss((y * 2 - 1) * 20, y).item() < 1e-3
    assert soft_dice_loss(torch.full((1, 1, 8, 8), -20.0), torch.zeros(1, 1, 8, 8)).item() < 1e-6  # normal image


def test_teacher_weights_route_by_label():
    w = teacher_weights(_labels("benign", "malignant", "normal"), "routed")
    assert w.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
    assert teacher_weights(_labels("benign", "malignant"), "malignant").tolist() == [[0.0, 1.0]] * 2
    assert teacher_weights(_labels("benign"), "mean").tolist() == [[0.5, 0.5]]


def test_routed_targets_pick_each_sample_teacher_and_mean_for_normal():
    torch.manual_seed(0)
    tb = create_model("attention_unet", widths=[8, 16]).eval()
    tm = create_model("attention_unet", widths=[8, 16]).eval()
    x = torch.randn(3, 1, 16, 16)
    labels = _labels("benign", "malignant", "normal")
    logits, feats = routed_targets((tb, tm), x, teacher_weights(labels, "routed"))
    with torch.no_grad():
        lb, fb = tb.forward_features(x)
        lm, fm = tm.forward_features(x)
    assert torch.equal(logits[0], lb[0]) and torch.equal(logits[1], lm[1])
    assert torch.allclose(logits[2], (lb[2] + lm[2]) / 2, atol=1e-6)
    for f, b, m in zip(feats, fb, fm):
        assert torch.equal(f[0], b[0]) and torch.equal(f[1], m[1])
        assert torch.allclose(f[2], (b[2] + m[2]) / 2, atol=1e-6)
    assert not logits.requires_grad


def test_distill_objective_freezes_teachers_and_keeps_them_out_of_the_state():
    torch.manual_seed(0)
    student = create_model("simplified_unet", widths=[8, 16])
    teachers = [create_model("attention_unet", widths=[8, 16, 32]).train() for _ in range(2)]
    obj = DistillObjective(student, teachers, "dual", "routed", 1.0, 1.0, 2.0).train()
    assert all(not t.training for t in teachers)
    assert all(not p.requires_grad for t in teachers for p in t.parameters())
    assert all(k.startswith(("model.", "adapters.")) for k in obj.state_dict())
    x, y = torch.randn(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    loss, parts = obj(x, y, _labels("benign", "normal"))
    loss.backward()
    assert set(parts) == {"seg", "kd_resp", "kd_feat"}
    assert student.head.weight.grad is not None and obj.adapters.convs[0].weight.grad is not None
