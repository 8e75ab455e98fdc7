"""btseg.bench: accuracy, latency, memory and FLOPs of every artifact of a model package.

Modules: :mod:`~btseg.bench.flops` (params, MACs), :mod:`~btseg.bench.sysinfo` (the machine),
:mod:`~btseg.bench.latency` (batch-1 single-stream timing, batch and stream throughput),
:mod:`~btseg.bench.peak` (the machine's peak GMAC/s per precision), :mod:`~btseg.bench.memory` (peak
RSS in a fresh subprocess), :mod:`~btseg.bench.accuracy` (Dice/IoU/HD95 on the test split),
:mod:`~btseg.bench.runner` (rows = artifacts x backends), :mod:`~btseg.bench.report`
(table, JSON, CSV, Markdown, plot).  The CLI is ``btseg-bench`` (:mod:`btseg.cli.bench`).

This module stays import-light on purpose: the memory probe imports it in a fresh
interpreter and everything imported here would count as the "bare interpreter" baseline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_segmenter(package: str | Path, backend: str, target: str, precision: str,
                   device: str = "cpu", threads: int | None = None, **options: Any) -> Any:
    """Load one (package, target, precision) with one backend through the real runtime.

    ``target == "torch"`` is the package's own weights in PyTorch (the FP32 reference);
    ``options`` go to the backend (``streams``, OpenVINO ``cache``).
    """
    from btseg.runtime import Segmenter

    return Segmenter.load(package, target=target, precision=precision, backend=backend,
                          device=device, threads=threads, **options)
