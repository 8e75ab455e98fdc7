"""Phantom generation speed: 300 images at 256 px (goal: under 60 s on 2 cores).

Usage::

    python benchmarks/bench_phantom.py [--n 300] [--size 256] [--workers 2]

Prints one line: images, size, workers, seconds and images per second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from btseg.data.phantom import synthesize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthesize(tmp, n=a.n, size=a.size, seed=a.seed, workers=a.workers)
        dt = time.perf_counter() - t0  # includes process start-up and PNG writing
    print(f"phantom: {a.n} images, {a.size} px, {a.workers} workers: {dt:.2f} s ({a.n / dt:.1f} images/s)")


if __name__ == "__main__":
    main()
