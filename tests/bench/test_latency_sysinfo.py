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


class _Clock:
    """A segmenter whose every call takes a known time and reports its own stages."""

    def __init__(self, ms: float, log: list[str], name: str) -> None:
        self.ms, self.log, self.name = ms, log, name

    def segment(self, image):
        import time as _t
        from types import SimpleNamespace

        self.log.append(self.name)
        t0 = _t.perf_counter()
        while (_t.perf_counter() - t0) * 1e3 < self.ms:
            pass
        return SimpleNamespace(timings={"infer_ms": self.ms})


def test_interleaved_timing_runs_rows_round_robin_in_blocks_and_keeps_exactly_iters():
    from btseg.bench.latency import time_interleaved

    log: list[str] = []
    calls = {"a": (_Clock(1.0, log, "a"), None, None), "b": (_Clock(3.0, log, "b"), None, None)}
    res = time_interleaved(calls, warmup=1, iters=7, block=3)
    meta = res.pop("_meta")
    assert meta == {"rounds": 4, "block": 3}  # 2 timed per block: 4 rounds for >= 7
    assert log[2:] == (["a"] * 3 + ["b"] * 3) * 4  # after one warm-up call each: blocks, alternating
    assert res["a"]["e2e"].n == res["b"]["e2e"].n == 7 and res["a"]["infer"].n == 7
    assert res["a"]["e2e"].p50_ms >= 1.0 and res["b"]["e2e"].p50_ms >= 3.0 > res["a"]["e2e"].p50_ms
    with pytest.raises(ConfigError, match="block=1"):
        time_interleaved(calls, iters=3, block=1)
