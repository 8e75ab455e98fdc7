"""benchmarks/gpu_smoke.py: the GPU smoke script's own code, exercised on the CPU (--dry-run).

It has never run on a GPU here; this keeps it importable, its options checked and its
CPU-capable sections (environment, parity with AMP on the CPU) running, so that the first
GPU machine spends its minutes on the GPU, not on a typo.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("gpu_smoke", ROOT / "benchmarks" / "gpu_smoke.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_options(smoke):
    a = smoke.parse_args([])
    assert (a.device, a.size, a.steps, a.sections) == ("cuda", 256, 10, list(smoke.SECTIONS))
    d = smoke.parse_args(["--dry-run", "--sections", "parity"])
    assert (d.device, d.size, d.steps, d.sections) == ("cpu", 64, 2, ["parity"])
    with pytest.raises(SystemExit) as e:
        smoke.parse_args(["--sections", "parity,warp"])
    assert e.value.code == 2


def test_dry_run_writes_json(smoke, tmp_path):
    out = tmp_path / "smoke.json"
    rc = smoke.main(["--dry-run", "--sections", "environment,parity", "--out", str(out)])
    report = json.loads(out.read_text())
    assert rc == 0, report
    assert report["environment"]["status"] == "ok" and report["environment"]["torch"]
    p = report["parity"]
    assert p["status"] == "ok" and p["fp32_max_abs_logit_diff"] == 0.0 and p["amp_mask_agreement"] > 0.9


def test_a_failing_section_is_recorded_and_exits_1(smoke, tmp_path):
    out = tmp_path / "smoke.json"
    # bench needs the export section's package: alone it must fail, recorded, not raise
    assert smoke.main(["--dry-run", "--sections", "bench", "--out", str(out)]) == 1
    bench = json.loads(out.read_text())["bench"]
    assert bench["status"] == "failed" and "no exported package" in bench["error"]
