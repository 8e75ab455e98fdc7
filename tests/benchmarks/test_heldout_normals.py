"""benchmarks/heldout_normals.py: held-out normal sets counted through the one accuracy path,
and its AUC is the Mann-Whitney statistic."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from script_util import load_script

script = load_script("benchmarks/heldout_normals.py")


def test_auc_known_values():
    assert script.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert script.auc([0.1], [0.9]) == 0.0
    assert script.auc([0.5], [0.5]) == 0.5
    assert script.auc([], [0.5]) is None


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20), st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_auc_is_symmetric(pos, neg):
    assert abs(script.auc(pos, neg) + script.auc(neg, pos) - 1.0) < 1e-9


def test_counts_match_the_package_on_each_set(tmp_path):
    import torch

    from btseg.data import Splits, open_dataset
    from btseg.data.phantom import synthesize
    from btseg.distill.config import get_preset
    from btseg.distill.evaluate import evaluate_package
    from btseg.distill.pipeline import run

    torch.set_num_threads(1)
    synthesize(tmp_path / "data", n=24, size=64, seed=0, workers=1, hard_normals=True)
    synthesize(tmp_path / "normals", n=6, size=64, seed=1, workers=1, hard_normals=True, fractions=(0, 0, 1))
    run("student", tmp_path / "data", tmp_path / "run", get_preset("tiny").replace(progress=False, device="cpu",
                                                                                    kd="none"))
    out = tmp_path / "res" / "held"
    (tmp_path / "res").mkdir()
    assert script.main(["--data", str(tmp_path / "data"), "--splits", str(tmp_path / "run" / "splits.json"),
                        "--normals", str(tmp_path / "normals"), "--packages", str(tmp_path / "run" / "student"),
                        "--out", str(out)]) == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    row = doc["packages"][0]
    direct = evaluate_package(tmp_path / "run" / "student", open_dataset(tmp_path / "normals"), distances=False)
    assert row["heldout"]["normals"]["flagged"] == direct["presence"]["normal"]["flagged"]
    assert row["heldout"]["normals"]["n"] == 6
    test = Splits.load(tmp_path / "run" / "splits.json").select(open_dataset(tmp_path / "data"), "test")
    recorded = json.loads((tmp_path / "run" / "student" / "model.json").read_text())["metrics"]["test"]["presence"]
    assert row["test"]["normal_flagged"] == recorded["normal"]["flagged"] and len(test) == recorded["lesion"]["n"] + \
        recorded["normal"]["n"]
    assert 0.0 <= row["auc_val_lesions_vs_heldout"] <= 1.0
    op = row["at_95pct_of_val_test_lesions"]
    if op is not None:  # the calibration's rule: at least 95% of val + test lesion images kept
        assert op["lesions_detected"] >= 0.95 * op["lesions_n"] and op["heldout_n"] == 6
        assert 0 <= op["heldout_flagged"] <= row["heldout"]["normals"]["flagged_ungated"]
    assert "held-out `normals` flagged" in out.with_suffix(".md").read_text()
    assert row["heldout"]["normals"]["flagged_ungated"] >= row["heldout"]["normals"]["flagged"]
