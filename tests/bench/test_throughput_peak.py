"""btseg-bench --batch/--streams, load times, the peak probe and % of peak, and the plot's labels.

Real backends on the tiny exported package of conftest.py; no assertion on how fast anything is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.bench import peak, report, runner
from btseg.cli.bench import main
from btseg.errors import ConfigError


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("args", [["--batch", "0"], ["--streams", "-1"], ["--streams", "0"], ["--batch", "two"]])
def test_bad_batch_or_streams_is_a_usage_error(run_dir, args):
    res = _run("--model", str(run_dir / "student"), *args)
    assert res.exit_code == 2 and args[0] in res.output


@pytest.mark.parametrize("field,value", [("batch", 0), ("streams", -1), ("streams", 1.5), ("batch", True)])
def test_config_rejects_bad_batch_or_streams(field, value):
    with pytest.raises(ConfigError, match=f"--{field}"):
        runner.BenchConfig(**{field: value})


def test_batch_and_streams_rows_load_times_and_peak(run_dir):
    res = _run("--model", str(run_dir / "student"), "--backends", "onnxruntime,openvino", "--precisions", "fp32,int8",
               "--batch", "2", "--streams", "2", "--warmup", "1", "--iters", "2", "--no-memory", "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.output[res.output.index("{"):])
    assert result["config"]["batch"] == 2 and result["config"]["streams"] == 2
    assert result["peak"]["fp32"]["gmacs_per_s"] > 0 and result["peak"]["int8"]["gmacs_per_s"] > 0
    assert "u8" in result["peak"]["int8"]["how"] or "i8" in result["peak"]["int8"]["how"]
    ok = [r for r in result["rows"] if r["status"] == "ok"]
    assert {r["backend"] for r in ok} == {"onnxruntime", "openvino"}
    for r in ok:
        modes = {t["mode"]: t for t in r["throughput"]}
        assert set(modes) == {"batch", "streams"}
        assert modes["batch"]["batch"] == 2 and modes["batch"]["images_per_s"] > 0
        assert modes["streams"]["streams"] == 2 and modes["streams"]["n"] >= 4 and modes["streams"]["images_per_s"] > 0
        assert r["load_ms"] > 0 and r["images_per_s"] > 0 and r["gmacs_per_s"] > 0
        assert r["pct_peak"] > 0 and r["peak_precision"] in ("fp32", "bf16", "int8")
        if r["backend"] == "openvino":
            assert r["load_cached_ms"] > 0  # the second load came from this run's model cache
            assert modes["streams"]["backend_info"]["performance_hint"].endswith("THROUGHPUT")
        else:
            assert "load_cached_ms" not in r
    int8 = [r for r in ok if r["precision"] == "int8"]
    assert int8 and all(r["peak_precision"] == "int8" for r in int8)
    head, cells = report.display_rows(result)
    assert "% peak" in head and all("b2:" in c[head.index("img/s (batch/streams)")] for c in cells if c[0] == "ok")
    assert "peak (this run)" in report.markdown(result)


def test_peak_for_maps_what_the_row_ran_in():
    peaks = {"fp32": {"gmacs_per_s": 10.0}, "bf16": {"skipped": "no bf16"}, "int8": {"gmacs_per_s": 40.0}}
    assert peak.peak_for(peaks, "u8") == ("int8", 40.0)
    assert peak.peak_for(peaks, "i8") == ("int8", 40.0)
    assert peak.peak_for(peaks, "f32") == ("fp32", 10.0)
    assert peak.peak_for(peaks, "bf16") == ("bf16", None)  # not on this CPU: no share, not a wrong one
    assert peak.peak_for(peaks, None) == ("fp32", 10.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 300), st.floats(0, 300)), min_size=1, max_size=40))
def test_plot_labels_never_overlap(points):
    w, h = 16.0, 13.0
    spots = report.place_labels(points, (w, h), 15.0)
    assert len(spots) == len(points)
    for i, a in enumerate(spots):
        for b in spots[i + 1:]:
            assert abs(a[0] - b[0]) >= w or abs(a[1] - b[1]) >= h


def test_plot_of_a_crowded_run_writes_a_png(tmp_path):
    rows = [{"status": "ok", "model": f"m{i % 3}", "backend": ["onnxruntime", "openvino"][i % 2], "target": "onnx",
             "precision": "fp32", "dice": 0.9 + 1e-4 * i, "latency": {"infer": {"p90_ms": 5 + 0.01 * i}}}
            for i in range(30)]
    assert report.plot(tmp_path / "p.png", {"rows": rows, "config": {"device": "cpu", "threads": 2}})
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_streams_timing_matches_sequential_results(run_dir):
    from btseg.runtime.backend import load_backend
    from btseg.runtime.pipeline import infer_many

    onnx = next((run_dir / "student").glob("*-fp32.onnx"))
    x = [np.random.default_rng(i).standard_normal((1, 1, 64, 64)).astype(np.float32) for i in range(7)]
    for name in ("onnxruntime", "openvino"):
        one = load_backend(name, onnx, threads=2, **({"cache": False} if name == "openvino" else {}))
        many = load_backend(name, onnx, threads=2, streams=2, **({"cache": False} if name == "openvino" else {}))
        assert many.info()["streams"] == 2
        got = list(infer_many(many, x))
        assert len(got) == 7
        for a, b in zip(got, x):
            np.testing.assert_allclose(a, one.infer(b), rtol=1e-4, atol=1e-4)
