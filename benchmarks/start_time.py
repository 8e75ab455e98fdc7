"""OpenVINO start-up: cold compile vs the model cache, interleaved.

Usage::

    python benchmarks/start_time.py --model PKG [--precision int8] [--rounds 5] [--threads 2]

Each round times ``Segmenter.load`` twice: once with a new, empty cache folder (cold: read,
compile, write the blob) and once with a folder warmed before the rounds (cached: the blob
is imported).  Both include everything a cart's start does (package and sha256 checks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = ap.parse_args()
    from btseg.runtime.segmenter import Segmenter

    def load(cache: str) -> float:
        t0 = time.perf_counter()
        Segmenter.load(a.model, target="openvino", precision=a.precision, backend="openvino", threads=a.threads,
                       cache=cache)
        return (time.perf_counter() - t0) * 1e3

    with tempfile.TemporaryDirectory() as root:
        warm = os.path.join(root, "warm")
        load(warm)
        cold, cached = [], []
        for i in range(a.rounds):
            cold.append(load(os.path.join(root, f"cold{i}")))
            cached.append(load(warm))
    print(f"{a.model} openvino/{a.precision}: cold {[round(c) for c in cold]} median {statistics.median(cold):.0f} ms; "
          f"cached {[round(c) for c in cached]} median {statistics.median(cached):.0f} ms; "
          f"loadavg {open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else '?'}")


if __name__ == "__main__":
    main()
