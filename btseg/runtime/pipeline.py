"""Pipelined segmentation: decode, inference and writing overlap on a few threads.

On a CPU the inference engines release the GIL, and so do OpenCV's decoders and encoders,
so a handful of threads keep the cores busy while one item is being read, another
inferred and a third written.  Everything here is bounded (at most ``depth`` items in
flight, so a folder of 10 000 images never sits in memory) and ordered (results come out
in input order, whatever order the workers finish in).  An item whose work raises yields
its exception in its place; the others go on.

Example::

    >>> seg = Segmenter.load("runs/demo/student", streams=2)                # doctest: +SKIP
    >>> for frame, out in segment_stream(frames, seg, workers=3):          # doctest: +SKIP
    ...     if isinstance(out, Exception): print(frame.name, out)
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np

from btseg.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int = 2,
                depth: int | None = None) -> Iterator[tuple[T, R | BaseException]]:
    """``(item, fn(item))`` for each item, in input order, ``fn`` running on ``workers`` threads.

    At most ``depth`` (default ``2 * workers``) items are pulled from ``items`` ahead of
    the consumer.  An exception raised by ``fn`` (an ``Exception``, not a ``KeyboardInterrupt``)
    is yielded in place of the result; one raised by ``items`` itself propagates.

    Raises:
        ConfigError: ``workers`` or ``depth`` below 1.
    """
    if workers < 1 or (depth is not None and depth < 1):
        raise ConfigError(f"pipeline: workers={workers} depth={depth}; expected >= 1")
    depth = depth or 2 * workers
    if workers == 1:  # no threads at all: exactly the sequential behaviour
        for item in items:
            yield item, _call(fn, item)
        return
    pending: deque[tuple[T, Future]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="btseg-pipe") as pool:
        try:
            for item in items:
                pending.append((item, pool.submit(_call, fn, item)))
                while len(pending) >= depth:
                    head, fut = pending.popleft()
                    yield head, fut.result()
            while pending:
                head, fut = pending.popleft()
                yield head, fut.result()
        finally:  # consumer stopped early or items raised: drop what has not started
            for _, fut in pending:
                fut.cancel()


def _call(fn: Callable[[T], R], item: T) -> R | Exception:
    try:
        return fn(item)
    except Exception as e:  # noqa: BLE001 - handed to the consumer, which decides per item
        return e


def segment_stream(frames: Iterable[Any], segmenter: Any, workers: int = 2, depth: int | None = None,
                   spacing_mm: float | tuple[float, float] | None = None) -> Iterator[tuple[Any, Any]]:
    """``(frame, Segmentation | Exception)`` per decoded frame, in order, ``workers`` at a time.

    Load the segmenter with ``streams=workers`` (OpenVINO THROUGHPUT streams / ONNX Runtime
    sessions) so that the concurrent calls really run side by side.
    """
    return ordered_map(lambda f: segmenter.segment(f, spacing_mm), frames, workers, depth)


def infer_many(backend: Any, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The backend's own ``infer_many`` (async requests / parallel sessions), else one by one."""
    many = getattr(backend, "infer_many", None)
    if many is not None:
        yield from many(batches)
        return
    for x in batches:
        yield backend.infer(x)
