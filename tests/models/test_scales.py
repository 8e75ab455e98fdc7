"""Model scales n/s/m/l: built through the registry and the contract, ordered by cost,
``l`` is the paper student, and every error names the valid scales."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.bench.flops import count_macs, count_params
from btseg.contract import SCALES, scale_widths
from btseg.errors import ConfigError
from btseg.models import SimplifiedUNet, create_model, model_contract
from btseg.schema import model_divisor

ORDER = ["n", "s", "m", "l"]


@pytest.fixture(scope="module")
def costs():
    return {s: (count_params(m := create_model("simplified_unet", scale=s)), count_macs(m, (256, 256)))
            for s in ORDER}


def test_every_scale_builds_and_runs_and_the_contract_matches_the_model():
    for s in ORDER:
        m = create_model("simplified_unet", scale=s).eval()
        c = model_contract("simplified_unet", scale=s)
        assert m.widths == SCALES["simplified_unet"][s]
        with torch.no_grad():
            logits, feats = m.forward_features(torch.zeros(1, 1, 32, 32))
        assert logits.shape == (1, 1, 32, 32)
        assert tuple(f.shape[1] for f in feats) == c.feature_channels == tuple(m.feature_channels)
        assert c.size_divisor == m.size_divisor == 16
        assert model_divisor("simplified_unet", {"scale": s}) == 16


def test_cost_ordering_n_below_s_below_m_below_l(costs):
    params = [costs[s][0] for s in ORDER]
    macs = [costs[s][1] for s in ORDER]
    assert params == sorted(params) and len(set(params)) == 4
    assert macs == sorted(macs) and len(set(macs)) == 4
    assert costs["n"][1] <= 0.6e9


def test_l_is_the_paper_student_with_the_same_weights_layout(costs):
    paper = SimplifiedUNet()
    assert costs["l"][1] == count_macs(paper, (256, 256))
    assert round(costs["l"][1] / 1e9, 2) == 3.08
    assert costs["l"][0] == count_params(paper) == 1_994_057
    l_model = create_model("simplified_unet", scale="l")
    assert l_model.state_dict().keys() == paper.state_dict().keys()
    assert all(l_model.state_dict()[k].shape == v.shape for k, v in paper.state_dict().items())


def test_the_bundled_package_still_loads():
    from btseg.defaults import default_package
    from btseg.package import load_package

    pkg = load_package(default_package())  # made before scales existed: widths only, no scale
    model = pkg.build_model()
    assert "scale" not in pkg.config.kwargs and model.widths == pkg.config.kwargs["widths"]


@settings(max_examples=25, deadline=None)
@given(st.one_of(st.text(max_size=3), st.integers(), st.none(), st.sampled_from(["N", "xl", "x", "l "])))
def test_unknown_scales_are_refused_naming_the_valid_ones(scale):
    if scale in ORDER or scale is None:
        return
    for call in (lambda: create_model("simplified_unet", scale=scale),
                 lambda: model_contract("simplified_unet", scale=scale)):
        with pytest.raises(ConfigError, match="valid scales: n, s, m, l"):
            call()


def test_scale_and_widths_must_agree_and_other_models_have_no_scales():
    assert create_model("simplified_unet", scale="n", widths=SCALES["simplified_unet"]["n"]).widths \
        == SCALES["simplified_unet"]["n"]
    with pytest.raises(ConfigError, match="give one of scale or widths"):
        create_model("simplified_unet", scale="n", widths=[8, 16, 32])
    with pytest.raises(ConfigError, match="has no scales.*simplified_unet"):
        scale_widths("unext", "n")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("unext", scale="n")


def test_a_training_config_with_a_scale_is_checked_against_the_contract():
    from btseg.distill.config import get_preset

    cfg = get_preset("tiny").replace(student_kwargs={"scale": "n"})
    assert cfg.student_kwargs == {"scale": "n"}
    with pytest.raises(ConfigError, match="multiple of 16"):
        get_preset("tiny").replace(image_size=72, student_kwargs={"scale": "n"})
    with pytest.raises(ConfigError, match="valid scales"):
        get_preset("tiny").replace(student_kwargs={"scale": "xl"})


def test_the_readme_scale_table_holds(costs):
    """README "Model scales" quotes these; a change to SCALES must update it."""
    readme = {"n": (0.284, 0.474), "s": (0.501, 0.771), "m": (1.124, 1.732), "l": (1.994, 3.077)}
    assert {s: (round(p / 1e6, 3), round(m / 1e9, 3)) for s, (p, m) in costs.items()} == readme
