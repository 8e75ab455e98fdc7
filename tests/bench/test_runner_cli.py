"""btseg-bench end to end on a tiny exported package: reports, failed rows, gating, memory."""

from __future__ import annotations

import csv
import json
import os

import pytest
from click.testing import CliRunner

from btseg.bench import memory, report, runner
from btseg.cli.bench import main

FAST = ["--warmup", "1", "--iters", "3", "--limit", "3", "--no-peak"]


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_reports_and_failed_backend_row(run_dir, phantom, tmp_path):
    out = tmp_path / "out"
    res = _run("--model", str(run_dir / "student"), "--data", str(phantom), "--out", str(out), "--no-memory",
               "--backends", "all", *FAST)
    assert res.exit_code == 0, res.output
    result = json.loads((out / "bench.json").read_text())
    assert {"config", "system", "test_set", "rows", "flops_convention", "created"} <= set(result)
    assert result["config"]["threads"] >= 1 and result["system"]["cpu"]["cores_logical"] >= 1
    rows = {(r["backend"], r["target"], r["precision"]): r for r in result["rows"]}
    # tensorrt is not installed here: a failed row with the reason, and the run went on
    trt = rows[("tensorrt", "-", "-")]
    assert trt["status"] == "failed" and "tensorrt" in trt["reason"]
    ok = [r for r in result["rows"] if r["status"] == "ok"]
    assert {r["backend"] for r in ok} >= {"torch", "onnxruntime", "openvino"}
    ref = rows[("torch", "torch", "fp32")]
    assert ref["dice_pct_fp32"] == pytest.approx(100.0)
    for r in ok:
        assert 0 <= r["dice"] <= 1 and r["latency"]["infer"]["n"] == 3 and r["latency"]["e2e"]["p90_ms"] > 0
        # the package's rows were timed together, round-robin (the default)
        assert r["latency_mode"] == f"interleaved: {len(ok)} rows, 1 rounds of 5 calls"
        assert r["params"] > 0 and r["macs"] > 0 and r["runtime"]["inference_precision"]
        assert set(r["accuracy"]["per_class"]) <= {"benign", "malignant", "normal"}
    # the FP32 ONNX artifact on onnxruntime matches the torch reference closely
    assert rows[("onnxruntime", "onnx", "fp32")]["dice_pct_fp32"] == pytest.approx(100.0, abs=2.0)

    with open(out / "bench.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == list(report.CSV_FIELDS) and len(table) == len(result["rows"])
    assert {t["status"] for t in table} >= {"ok", "failed"}

    md = (out / "bench.md").read_text()
    assert "| status | model | backend |" in md and "Rows that did not run" in md and "FlopCounterMode" in md

    png = (out / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    assert matplotlib.image.imread(str(out / "bench.png")).shape[2] in (3, 4)


def test_corrupted_artifact_refuses_the_package(run_dir):
    """A package failing its integrity check is not benchmarked at all (exit 2), not even its
    intact rows: the numbers would describe a package that is not the released one."""
    from btseg.errors import IntegrityError

    onnx_file = next((run_dir / "student").glob("*.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes()[:-64] + b"\0" * 64)
    cfg = runner.BenchConfig(models=[str(run_dir / "student")], backends=["torch", "onnxruntime"],
                             precisions=["fp32"], warmup=0, iters=2, memory=False, peak=False)
    with pytest.raises(IntegrityError, match=f"refusing to benchmark .*{onnx_file.name}: sha256"):
        runner.run(cfg)
    r = _run("--model", str(run_dir / "student"), "--backends", "torch", "--no-memory", *FAST)
    assert r.exit_code == 2 and "sha256" in r.output


def test_min_dice_gate_exit_codes(run_dir, phantom):
    args = ["--model", str(run_dir / "student"), "--data", str(phantom), "--backends", "torch", "--no-memory", *FAST]
    assert _run(*args, "--min-dice", "0").exit_code == 0
    seq = _run(*args, "--sequential", "--json")
    assert seq.exit_code == 0 and json.loads(seq.stdout)["rows"][0]["latency_mode"] == "sequential"
    assert _run(*args, "--block", "1").exit_code == 2  # a block needs an untimed first call
    low = _run(*args, "--min-dice", "1.0")  # a random-init model is below a perfect Dice
    assert low.exit_code == 1 and "below --min-dice" in low.output
    assert _run("--model", str(run_dir / "student"), "--min-dice", "0.5").exit_code == 2  # no --data


def test_memory_is_measured_in_a_fresh_process(run_dir):
    import numpy as np
    import psutil

    # a big parent: ru_maxrss would carry its high-water mark into the child across exec
    ballast = np.ones(1024 * 2**20 // 8)
    parent_mb = psutil.Process().memory_info().rss / 2**20
    m = memory.measure_memory(run_dir / "student", "onnxruntime", "onnx", "fp32", iters=2, threads=1)
    del ballast
    assert m["status"] == "ok", m
    assert m["pid"] != os.getpid() and m["peak_rss_mb"] > 0 and m["baseline_rss_mb"] > 0
    assert m["peak_rss_mb"] < parent_mb - 500, (m, parent_mb)
    assert m["peak_rss_mb"] >= m["loaded_rss_mb"] >= m["baseline_rss_mb"] * 0.9
    bad = memory.measure_memory(run_dir / "student", "onnxruntime", "onnx", "int4", iters=1)
    assert bad["status"] == "failed" and bad["reason"]


def test_compare_teachers_adds_siblings_and_defaults_error(run_dir):
    models = runner.with_siblings([str(run_dir / "student")])
    assert [os.path.basename(m) for m in models] == ["student", "teacher-benign"]
    from btseg import defaults

    if not (defaults.DEFAULT_PACKAGE / "model.json").exists():  # else tests/test_defaults.py runs it
        res = _run()
        assert res.exit_code == 2 and "missing" in res.output and "make weights" in res.output


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.6), (4.0, 0.9)]
    assert report.pareto(pts) == [0, 1, 4]


def test_data_with_bad_items_refused_naming_all_or_skipped_and_listed(run_dir, tmp_path):
    from btseg.data.phantom import synthesize

    s = synthesize(tmp_path / "messy", n=16, size=64, seed=1, workers=1, defects="bad")
    bad = [f.split("/")[-1] for d in s["defects"] for f in d["files"]]
    args = ["--model", str(run_dir / "student"), "--data", str(tmp_path / "messy"), "--backends", "torch",
            "--no-memory", "--split", "all", "--json", *FAST]
    res = _run(*args)
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and all(f in res.stderr for f in bad)
    res = _run(*args, "--skip-bad")
    assert res.exit_code == 0, res.output
    assert all(res.stderr.count(f + ":") == 1 for f in bad)
    skipped = json.loads(res.stdout)["test_set"]["skipped"]
    assert {d["file"].split("/")[-1] for d in skipped} == set(bad)
