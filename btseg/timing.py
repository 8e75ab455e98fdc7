"""The one round-robin block timer.

Several things timed on one machine are compared fairly only under the same load: each
round runs ``block`` consecutive calls of every callable in turn (A A A A, B B B B, A A A A
...) and keeps all but the first call of each block.  Blocks rather than single calls: ONNX
Runtime's idle worker threads spin after a run, and one call each let one session's spinning
workers slow the next (docs/bench.md).

Used by ``Segmenter.load(select="fastest")`` (:mod:`btseg.runtime.select`), the bench's
interleaved latency (:func:`btseg.bench.latency.time_interleaved`) and the scripts
``benchmarks/int8_ratio.py`` and ``benchmarks/ort_interleaved.py``.

Example::

    >>> t = round_robin({"a": lambda: sum(range(100)), "b": lambda: sum(range(200))}, block=3,
    ...                 stop=for_rounds(4))
    >>> t.rounds, len(t.ms["a"]), len(t.block_medians["b"])
    (4, 8, 4)
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from btseg.errors import ConfigError

# stop(rounds done, timed ms so far per key) -> True to stop after this round
Stop = Callable[[int, Mapping[str, list[float]]], bool]


@dataclass
class BlockTimes:
    """What :func:`round_robin` measured: every timed call (ms) and each block's median, per key."""

    ms: dict[str, list[float]]
    block_medians: dict[str, list[float]] = field(default_factory=dict)
    rounds: int = 0

    def median(self) -> dict[str, float]:
        """Median ms per call, per key."""
        return {k: statistics.median(v) for k, v in self.ms.items()}


def for_rounds(n: int) -> Stop:
    """Stop after exactly ``n`` rounds."""
    return lambda r, _ms: r >= n


def until(min_rounds: int = 1, max_rounds: int | None = None, seconds: float | None = None,
          min_calls: int | None = None) -> Stop:
    """Stop once ``min_rounds`` ran and either ``seconds`` passed (from now) or every key has
    ``min_calls`` timed calls; never run more than ``max_rounds``."""
    t_end = time.perf_counter() + seconds if seconds is not None else None

    def stop(r: int, ms: Mapping[str, list[float]]) -> bool:
        if max_rounds is not None and r >= max_rounds:
            return True
        if r < min_rounds:
            return False
        return ((min_calls is not None and min(len(v) for v in ms.values()) >= min_calls)
                or (t_end is not None and time.perf_counter() >= t_end))
    return stop


def round_robin(calls: Mapping[str, Callable[[], Any]], block: int, stop: Stop,
                on_result: Callable[[str, Any], None] | None = None) -> BlockTimes:
    """Time ``calls`` round-robin in blocks of ``block`` calls, the first of each untimed.

    Args:
        calls: key -> a callable timed as it is (fold a device synchronise into it).
        block: consecutive calls per key per round (>= 2: the first is untimed).
        stop: checked after every round (:func:`for_rounds`, :func:`until`).
        on_result: given ``(key, return value)`` of every timed call (e.g. per-stage timings).

    No warm-up is done here: callers warm up as their measurement needs.
    """
    if block < 2:
        raise ConfigError(f"block {block}: expected >= 2 (the first call of each block is untimed)")
    out = BlockTimes({k: [] for k in calls}, {k: [] for k in calls})
    while True:
        for key, call in calls.items():
            kept = []
            for i in range(block):
                t0 = time.perf_counter()
                result = call()
                if i:
                    kept.append((time.perf_counter() - t0) * 1e3)
                    if on_result is not None:
                        on_result(key, result)
            out.ms[key] += kept
            out.block_medians[key].append(statistics.median(kept))
        out.rounds += 1
        if stop(out.rounds, out.ms):
            return out
