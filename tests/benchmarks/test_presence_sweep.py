"""benchmarks/presence_sweep.py end to end on the tiny preset: shared teachers per seed, one
student per variant and seed, pooled counts that add up to the packages' own."""

from __future__ import annotations

import json

from script_util import load_script


def test_sweep_pools_what_each_package_recorded(tmp_path):
    sweep = load_script("benchmarks/presence_sweep.py")
    res = tmp_path / "res" / "sweep"
    argv = ["--work", str(tmp_path / "w"), "--results", str(res), "--preset", "tiny", "--n", "24", "--size", "64",
            "--seeds", "0,1", "--device", "cpu", "--jobs", "2", "--variants", "base=", "nr2=--normal-repeat 2"]
    assert sweep.main(argv) == 0
    doc = json.loads(res.with_suffix(".json").read_text())
    assert set(doc["variants"]) == {"base", "nr2"} and doc["seeds"] == [0, 1]
    for name in ("base", "nr2"):
        pooled, k, n = doc["variants"][name]["pooled"]["test"], 0, 0
        for s in (0, 1):
            cfg = json.loads((tmp_path / "w" / "runs" / f"{name}-s{s}" / "student" / "model.json").read_text())
            assert cfg["training"]["normal_repeat"] == (2 if name == "nr2" else 1)
            assert cfg["training"]["kd"] == "dual"  # from the shared teachers of its seed
            k += cfg["metrics"]["test"]["presence"]["normal"]["flagged"]
            n += cfg["metrics"]["test"]["presence"]["normal"]["n"]
        assert (pooled["normal_flagged"], pooled["normal_n"]) == (k, n)
        lo, hi = pooled["normal_ci95"]
        assert 0 <= lo <= k / n <= hi <= 1
    assert res.with_suffix(".md").read_text().count("| base |") == 1
    # re-run: every package is reused, nothing retrained
    before = (tmp_path / "w" / "runs" / "base-s0" / "student" / "model.json").stat().st_mtime_ns
    assert sweep.main(argv) == 0
    assert (tmp_path / "w" / "runs" / "base-s0" / "student" / "model.json").stat().st_mtime_ns == before
