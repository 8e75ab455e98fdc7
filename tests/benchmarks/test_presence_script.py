"""benchmarks/presence.py on a tiny trained student: every rule is counted on val and test,
the chosen one is what training recorded, and the runtime, given that package, makes
exactly the decisions the calibration counted."""

from __future__ import annotations

import json

from click.testing import CliRunner
from script_util import load_script



def _load(name: str):
    return load_script(f"benchmarks/{name}.py")


def test_rules_and_runtime_agree(tmp_path):
    import torch

    from btseg.data.phantom import synthesize
    from btseg.distill.config import get_preset
    from btseg.distill.pipeline import run

    torch.set_num_threads(1)
    data = tmp_path / "data"
    synthesize(data, n=24, size=64, seed=0, workers=1, hard_normals=True)
    run("student", data, tmp_path / "run", get_preset("tiny").replace(progress=False, device="cpu", kd="none"))
    recorded = json.loads((tmp_path / "run" / "student" / "model.json").read_text())
    out = tmp_path / "presence.json"
    res = CliRunner().invoke(_load("presence").main, ["--run", str(tmp_path / "run"), "--data", str(data),
                                                      "--calibrated", str(tmp_path / "cal"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    chosen = [r for r in doc["rows"] if r["chosen"]]
    spec = recorded["postprocess"]["presence"]
    assert len(chosen) == 1 and (chosen[0]["score"], chosen[0]["min_area_frac"]) == (spec["score"], spec["min_area_frac"])
    assert chosen[0]["val"]["detected"] == spec["calibration"]["val"]["detected"]
    rt = doc["runtime"]["presence"]
    assert (rt["lesion"]["detected"], rt["normal"]["flagged"]) == (chosen[0]["test"]["detected"],
                                                                    chosen[0]["test"]["flagged"])
    assert recorded["metrics"]["test"]["presence"]["normal"]["flagged"] == rt["normal"]["flagged"]
    assert (out.with_suffix(".md")).read_text().count("| yes |") == 1
