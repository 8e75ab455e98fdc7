"""One home per package fact: file names in btseg.layout, the threshold's default and range in
btseg.contract; model.json written only through the schema check."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg import layout
from btseg.contract import DEFAULT_THRESHOLD, THRESHOLD_RANGE
from btseg.errors import ConfigError, SchemaError
from btseg.models import SimplifiedUNet
from btseg.package import ModelConfig, load_package, save_package
from btseg.preprocess import PreprocessSpec
from btseg.schema import check_model_json

REPO = Path(__file__).resolve().parents[1]
NAMES = {layout.CONFIG, layout.MANIFEST, layout.WEIGHTS}


def spelled(roots: list[Path]) -> list[str]:
    """Every string literal that is exactly a package file name, outside btseg/layout.py."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if path.name == "layout.py" and path.parent.name == "btseg":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in NAMES:
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_package_file_names_are_spelled_once():
    assert spelled([REPO / "btseg", REPO / "tools", REPO / "benchmarks"]) == []


def test_the_check_sees_a_second_spelling(tmp_path):
    (tmp_path / "btseg").mkdir()
    (tmp_path / "btseg" / "x.py").write_text('CFG = "model.json"\n')
    assert spelled([tmp_path / "btseg"]) == ["btseg/x.py:1: 'model.json'"]


def test_one_threshold_default():
    from btseg.distill.config import TrainConfig
    from btseg.runtime.postprocess import PostProcess

    assert ModelConfig("simplified_unet", {}).threshold == TrainConfig().threshold == DEFAULT_THRESHOLD
    assert PostProcess().threshold == DEFAULT_THRESHOLD


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.floats(-2, 2), st.sampled_from([0.0, 1.0, 0.999, 0.9995, math.nan, math.inf, 1e-9])))
def test_one_threshold_range(value):
    # training refuses exactly what model.json's schema refuses: a trained package always loads
    from btseg.distill.config import TrainConfig

    doc = ModelConfig("simplified_unet", {}, weights_sha256="0" * 64, weights_size=1, threshold=value).to_dict()
    try:
        check_model_json(doc, "model.json")
        schema_ok = True
    except SchemaError:
        schema_ok = False
    try:
        TrainConfig(threshold=value)
        train_ok = True
    except ConfigError as e:
        assert str(e).startswith("threshold=")
        train_ok = False
    assert schema_ok == train_ok == (THRESHOLD_RANGE[0] < value < THRESHOLD_RANGE[1])


def test_write_config_refuses_what_load_would_refuse(tmp_path):
    root = tmp_path / "pkg"
    pkg = save_package(root, SimplifiedUNet(widths=(8, 16, 32)),
                       ModelConfig("simplified_unet", {"widths": [8, 16, 32]}, PreprocessSpec(size=(32, 32))))
    before = layout.config_path(root).read_bytes()
    pkg.config.threshold = 1.5
    with pytest.raises(SchemaError, match="threshold = 1.5"):
        pkg.write_config()
    assert layout.config_path(root).read_bytes() == before
    pkg.config.threshold = 0.25
    pkg.write_config()
    assert load_package(root).config.threshold == 0.25
    assert torch.equal(next(iter(load_package(root).build_model().state_dict().values())),
                       next(iter(pkg.build_model().state_dict().values())))
