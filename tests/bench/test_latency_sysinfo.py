"""Latency statistics and the machine description."""

import time

import numpy as np
import pytest

from btseg.bench import sysinfo
from btseg.bench.latency import LatencyStats, time_callable, time_segmenter
from btseg.errors import ConfigError


def test_stats_percentiles():
    s = LatencyStats.from_samples(list(range(1, 101)))
    assert (s.min_ms, s.max_ms, s.n) == (1, 100, 100)
    assert s.p50_ms == pytest.approx(50.5) and s.p90_ms == pytest.approx(90.1)
    assert s.fps == pytest.approx(1000 / 50.5)


def test_time_callable_iters_and_duration():
    calls = []
    s = time_callable(lambda: calls.append(1), warmup=3, iters=7)
    assert s.n == 7 and len(calls) == 10
    s = time_callable(lambda: time.sleep(0.002), warmup=0, iters=None, duration=0.05)
    # a loaded machine may fit only one 2 ms sleep into 50 ms; an idle one at most 25
    assert 1 <= s.n <= 26 and s.min_ms >= 2.0
    with pytest.raises(ConfigError):
        time_callable(lambda: None, iters=None, duration=None)


def test_time_segmenter_uses_reported_stage_timings():
    class Seg:  # the Segmentation contract: an object with .timings
        timings = {"preprocess_ms": 1.0, "infer_ms": 2.0, "postprocess_ms": 3.0, "total_ms": 6.0}

        def segment(self, image):
            return self

    out = time_segmenter(Seg(), np.zeros((4, 4)), warmup=1, iters=5)
    assert out["infer"].p50_ms == 2.0 and out["postprocess"].mean_ms == 3.0 and out["e2e"].n == 5


def test_sysinfo_collect_is_json_and_names_versions():
    import json

    info = sysinfo.collect()
    json.dumps(info)
    assert info["cpu"]["cores_logical"] >= 1
    assert set(sysinfo.CPU_FLAGS) <= set(info["cpu"]["flags"])
    assert info["versions"]["torch"] and "tensorrt" in info["versions"]
    assert "Python" in sysinfo.short(info)
