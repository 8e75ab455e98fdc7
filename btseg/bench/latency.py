"""Batch-1 single-stream latency: warm up, then time one call at a time.

This is MLPerf's single-stream scenario: one query in flight, the next sent when the last
returns; its headline latency is the **90th percentile** (p90).  FPS here is single-stream
throughput, ``1000 / mean_ms``, not the multi-stream throughput a batched server gets.

Two views of the same run (see :func:`time_segmenter`):

* ``e2e``   end to end: ``Segmenter.segment(image)`` on the original-size image, timed
  outside the call (preprocess + inference + postprocess + Python overhead);
* ``infer`` inference only: the ``infer_ms`` the Segmenter itself reports for the same calls,
  with ``preprocess``/``postprocess`` alongside.

Example::

    >>> stats = time_callable(lambda: sum(range(1000)), warmup=2, iters=20)
    >>> stats.n, stats.p90_ms >= stats.p50_ms
    (20, True)
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from btseg.errors import ConfigError
from btseg.timing import round_robin, until


@dataclass
class LatencyStats:
    """Summary of per-call latencies, in milliseconds."""

    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    fps: float

    @classmethod
    def from_samples(cls, samples_ms: list[float] | np.ndarray) -> "LatencyStats":
        s = np.asarray(samples_ms, dtype=np.float64)
        if s.size == 0:
            raise ConfigError("no latency samples: iters/duration too small")
        p50, p90, p99 = np.percentile(s, [50, 90, 99])
        mean = float(s.mean())
        return cls(n=int(s.size), mean_ms=mean, std_ms=float(s.std()), min_ms=float(s.min()), p50_ms=float(p50),
                   p90_ms=float(p90), p99_ms=float(p99), max_ms=float(s.max()), fps=1000.0 / mean if mean > 0 else 0.0)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def cuda_sync(device: str) -> Callable[[], None] | None:
    """A synchronise hook for CUDA devices (so a timer never stops before the GPU does)."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    return torch.cuda.synchronize if torch.cuda.is_available() else None


def _loop(call: Callable[[], Any], warmup: int, iters: int | None, duration: float | None,
          sync: Callable[[], None] | None, on_result: Callable[[Any], None] | None = None) -> list[float]:
    if iters is None and duration is None:
        raise ConfigError("give iters or duration")
    if (iters is not None and iters < 1) or (duration is not None and duration <= 0) or warmup < 0:
        raise ConfigError(f"bad timing options: warmup={warmup} iters={iters} duration={duration}")
    for _ in range(warmup):
        call()
    if sync:
        sync()
    samples: list[float] = []
    t_end = time.perf_counter() + duration if duration is not None else None
    while True:
        t0 = time.perf_counter()
        result = call()
        if sync:
            sync()
        samples.append((time.perf_counter() - t0) * 1e3)
        if on_result is not None:
            on_result(result)
        if iters is not None and len(samples) >= iters:
            break
        if t_end is not None and time.perf_counter() >= t_end:
            break
    return samples


def time_callable(call: Callable[[], Any], warmup: int = 10, iters: int | None = 100,
                  duration: float | None = None, sync: Callable[[], None] | None = None) -> LatencyStats:
    """Time ``call()`` one at a time after ``warmup`` untimed calls.

    With ``duration`` (seconds) it runs until that much time has passed (and at least one
    call); with ``iters`` it stops after that many; with both, whichever comes first.
    """
    return LatencyStats.from_samples(_loop(call, warmup, iters, duration, sync))


def time_segmenter(segmenter: Any, image: np.ndarray, warmup: int = 10, iters: int | None = 100,
                   duration: float | None = None, sync: Callable[[], None] | None = None) -> dict[str, Any]:
    """End-to-end and per-stage latency of ``segmenter.segment(image)``.

    Returns ``{"e2e": LatencyStats, "infer": ..., "preprocess": ..., "postprocess": ...}``
    (stages absent from the Segmenter's ``timings`` are left out).
    """
    stages = _stages()
    e2e = _loop(lambda: segmenter.segment(image), warmup, iters, duration, sync, lambda r: _keep(stages, r))
    return _summary(e2e, stages)


def _stages() -> dict[str, list[float]]:
    return {"infer": [], "preprocess": [], "postprocess": []}


def _keep(stages: dict[str, list[float]], result: Any) -> None:
    """Append the stage times a Segmentation reports (``timings["infer_ms"]``, ...)."""
    timings = getattr(result, "timings", None) or {}
    for k, v in stages.items():
        if f"{k}_ms" in timings:
            v.append(float(timings[f"{k}_ms"]))


def _summary(e2e: list[float], stages: dict[str, list[float]], keep: slice = slice(None)) -> dict[str, Any]:
    """``{"e2e": LatencyStats, "infer": ..., ...}``; stages with no samples are left out."""
    out: dict[str, Any] = {"e2e": LatencyStats.from_samples(e2e[keep])}
    out.update({k: LatencyStats.from_samples(v[keep]) for k, v in stages.items() if v})
    return out


def time_interleaved(calls: dict[str, tuple[Any, np.ndarray, Callable[[], None] | None]], warmup: int = 5,
                     iters: int | None = 50, duration: float | None = None, block: int = 5) -> dict[str, dict[str, Any]]:
    """:func:`time_segmenter` for several segmenters at once, round-robin in blocks
    (:func:`btseg.timing.round_robin`).

    ``calls`` maps a key to ``(segmenter, image, sync)``.  Each round runs ``block``
    consecutive ``segment(image)`` calls of every segmenter in turn and keeps all but the first
    of each block; rounds repeat until each has ``iters`` timed calls (or, with ``duration``,
    until ``duration`` seconds per segmenter have passed, at least one round).  So every row
    sees the same machine load, and a ratio between rows is not a ratio between two moments of
    a shared machine.

    Returns ``{key: {"e2e": LatencyStats, "infer": ..., ...}, "_meta": {"rounds", "block"}}``.
    """
    if block < 2 or warmup < 0 or (iters is not None and iters < 1) or (duration is not None and duration <= 0):
        raise ConfigError(f"bad timing options: block={block} warmup={warmup} iters={iters} duration={duration}")
    if iters is None and duration is None:
        raise ConfigError("give iters or duration")
    stages = {k: _stages() for k in calls}
    for seg, image, sync in calls.values():
        for _ in range(warmup):
            seg.segment(image)
        if sync:
            sync()

    def timed(seg: Any, image: np.ndarray, sync: Callable[[], None] | None) -> Callable[[], Any]:
        def call() -> Any:
            result = seg.segment(image)
            if sync:
                sync()  # inside the timing: a timer never stops before the GPU does
            return result
        return call

    stop = until(seconds=duration * len(calls) if duration is not None else None, min_calls=iters)
    t = round_robin({k: timed(*c) for k, c in calls.items()}, block, stop, lambda k, r: _keep(stages[k], r))
    keep = slice(None) if iters is None else slice(iters)  # the last round may overshoot: exactly iters each
    out: dict[str, dict[str, Any]] = {k: _summary(t.ms[k], stages[k], keep) for k in calls}
    out["_meta"] = {"rounds": t.rounds, "block": block}
    return out


def time_batch(segmenter: Any, image: np.ndarray, batch: int, warmup: int = 10, iters: int | None = 100,
               duration: float | None = None, sync: Callable[[], None] | None = None) -> dict[str, Any]:
    """Throughput of ``segmenter.segment_batch`` on ``batch`` copies of ``image`` (end to end).

    Returns ``{"mode": "batch", "batch", "streams": 1, "latency": per-batch stats, "images_per_s"}``
    where images/s = batch / p50 seconds per batch.
    """
    if batch < 1:
        raise ConfigError(f"batch {batch}: expected >= 1")
    frames = [image] * batch
    stats = LatencyStats.from_samples(_loop(lambda: segmenter.segment_batch(frames), warmup, iters, duration, sync))
    return {"mode": "batch", "batch": batch, "streams": 1, "latency": stats.to_dict(),
            "images_per_s": batch * 1000.0 / stats.p50_ms}


def time_streams(backend: Any, x: np.ndarray, streams: int, warmup: int = 10, iters: int | None = 100,
                 duration: float | None = None) -> dict[str, Any]:
    """Inference throughput with ``streams`` requests in flight (``benchmark_app -api async``).

    ``backend`` should have been loaded with ``streams=streams``; its ``infer_many``
    (OpenVINO async requests round-robin, ONNX Runtime sessions on threads) is fed ``x`` again and
    again: ``iters`` x ``streams`` inferences, or for ``duration`` seconds.  Returns
    ``{"mode": "streams", "batch", "streams", "n", "seconds", "images_per_s"}``.
    """
    from btseg.runtime.pipeline import infer_many

    if streams < 1:
        raise ConfigError(f"streams {streams}: expected >= 1")
    if (iters is None and duration is None) or (iters is not None and iters < 1) or (duration is not None and duration <= 0):
        raise ConfigError(f"bad timing options: iters={iters} duration={duration}")
    for _ in infer_many(backend, [x] * max(warmup, streams)):
        pass
    n_max = iters * streams if iters is not None else None
    t0 = time.perf_counter()
    t_end = t0 + duration if duration is not None else None

    def feed() -> Any:
        i = 0
        while (n_max is None or i < n_max) and (t_end is None or time.perf_counter() < t_end or i < streams):
            i += 1
            yield x

    n = sum(1 for _ in infer_many(backend, feed()))
    seconds = time.perf_counter() - t0
    return {"mode": "streams", "batch": int(x.shape[0]), "streams": streams, "n": n, "seconds": seconds,
            "images_per_s": n * int(x.shape[0]) / seconds}
