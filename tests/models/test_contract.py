"""The model contract: size divisor and feature channels promised from the arguments alone,
held to what the built model really does; arguments checked before any allocation."""

from __future__ import annotations

import tracemalloc

import pytest
import torch

from btseg.distill.config import TrainConfig
from btseg.errors import ConfigError
from btseg.models import create_model, list_models, model_contract
from btseg.models import registry

SMALL = {"attention_unet": [4, 8, 16], "unet": [4, 8, 16, 32], "simplified_unet": [4, 8, 16],
         "unext": [4, 8, 16, 24, 32]}


@pytest.mark.parametrize("name", list_models())
def test_contract_matches_the_built_model(name):
    kw = {"widths": SMALL[name]}
    c = model_contract(name, **kw)
    m = create_model(name, **kw).eval()
    side = 2 * c.size_divisor
    with torch.no_grad():
        logits, feats = m.forward_features(torch.zeros(1, 1, side, side))
    assert logits.shape == (1, 1, side, side)
    assert tuple(f.shape[1] for f in feats) == c.feature_channels
    assert m.size_divisor == c.size_divisor
    c.check_size((side, side))
    with pytest.raises(ConfigError, match=f"multiple of {c.size_divisor}"):
        c.check_size((side + c.size_divisor // 2, side))


def test_unext_needs_multiples_of_32_and_the_config_says_so_before_training():
    assert model_contract("unext").size_divisor == 32
    with pytest.raises(ConfigError, match="image_size 144x144: unext needs each side a positive multiple of 32"):
        TrainConfig(image_size=144, student_arch="unext", student_kwargs={"widths": SMALL["unext"]})
    TrainConfig(image_size=144, teacher_kwargs={"widths": [8, 16, 32, 64, 128]})  # 144 = 9 x 16: fine for U-Nets


@pytest.mark.parametrize("widths", [[10**6, 2], [8, -1], [8], "8,16", [8, 16.5], [True, 8], list(range(1, 12))])
def test_hostile_widths_are_refused_before_any_allocation(widths):
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match="widths|width"):
            create_model("attention_unet", widths=widths)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing was built


def test_bad_arguments_are_a_config_error_but_a_models_own_error_passes_unchanged(monkeypatch):
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("simplified_unet", widht=[8, 16])

    class Fussy(torch.nn.Module):
        @classmethod
        def contract(cls, **kw):
            return model_contract("simplified_unet", widths=[4, 8])

        def __init__(self, n: int = 1):
            super().__init__()
            raise TypeError("my own TypeError from inside the constructor")

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model("fussy")(Fussy)
    with pytest.raises(TypeError, match="my own TypeError"):
        create_model("fussy", n=2)
    with pytest.raises(ConfigError, match="has no contract"):
        registry.register_model("no-contract")(torch.nn.Identity)


def test_the_model_json_schema_uses_the_same_divisor_as_the_model(tmp_path):
    """The torch-free schema (what a cart checks) and the model agree: UNeXt needs 32, not 16."""
    from btseg.schema import model_divisor

    for name in list_models():
        assert model_divisor(name, {"widths": SMALL[name]}) == model_contract(name, widths=SMALL[name]).size_divisor
