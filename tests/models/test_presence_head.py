"""The student's optional presence head (``presence_head=True``): an image-level logit that
gates the pixel logits in log space, inside the one output every backend runs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.distill.losses import SupervisedObjective, head_loss
from btseg.models import create_model

KW = {"widths": [8, 16, 32]}


def test_without_a_head_nothing_changes():
    torch.manual_seed(0)
    m = create_model("simplified_unet", **KW).eval()
    assert not any(k.startswith("presence.") for k in m.state_dict())
    x = torch.randn(2, 1, 64, 64)
    logits, feats, b = m.forward_presence(x)
    assert b is None and torch.equal(logits, m(x)) and len(feats) == len(m.forward_features(x)[1])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), bias=st.floats(-30, 30))
def test_the_head_only_ever_lowers_pixel_logits_by_log_sigmoid_of_b(seed, bias):
    torch.manual_seed(seed)
    m = create_model("simplified_unet", presence_head=True, **KW).eval()
    with torch.no_grad():
        m.presence.bias.fill_(bias)
        x = torch.randn(2, 1, 64, 64)
        out, feats, b = m.forward_presence(x)
        ungated = m.head(feats[-1])
    assert b.shape == (2, 1) and out.shape == ungated.shape
    assert torch.allclose(out, ungated + F.logsigmoid(b)[:, :, None, None], atol=1e-5)
    assert (out <= ungated + 1e-6).all()


def test_a_head_that_says_normal_empties_the_image_and_one_that_says_lesion_changes_nothing():
    torch.manual_seed(0)
    m = create_model("simplified_unet", presence_head=True, **KW).eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        m.presence.weight.zero_()
        m.presence.bias.fill_(-60.0)
        assert torch.sigmoid(m(x)).max() < 1e-20
        m.presence.bias.fill_(60.0)
        out, feats, _ = m.forward_presence(x)
        assert torch.allclose(out, m.head(feats[-1]), atol=1e-5)


@pytest.mark.parametrize("head_weight", [0.0, 1.0])
def test_the_head_learns_from_its_image_loss_and_through_the_gate(head_weight):
    torch.manual_seed(0)
    m = create_model("simplified_unet", presence_head=True, **KW)
    x, y = torch.randn(4, 1, 64, 64), torch.zeros(4, 1, 64, 64)
    y[:2, :, 20:30, 20:30] = 1  # two lesion images, two normal ones
    loss, parts = SupervisedObjective(m, head_weight=head_weight)(x, y, torch.tensor([0, 1, 2, 2]))
    loss.backward()
    assert m.presence.weight.grad.abs().sum() > 0  # the gate passes the pixel loss to the head too
    if head_weight:
        b = m.forward_presence(x)[2]
        assert head_loss(b, y).item() > 0


def test_head_loss_is_bce_of_has_a_lesion():
    y = torch.zeros(3, 1, 8, 8)
    y[0, 0, 2, 2] = 1
    z = torch.tensor([[2.0], [-1.0], [0.5]])
    want = F.binary_cross_entropy_with_logits(z.flatten(), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.isclose(head_loss(z, y), want)

