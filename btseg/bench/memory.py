"""Peak memory of loading and running one artifact, measured in a fresh subprocess.

Why a subprocess: resident memory is a per-process high-water mark, and allocators rarely
give memory back, so measuring artifact B in a process that already ran artifact A would
report A's peak.  Each artifact therefore gets its own interpreter::

    python -m btseg.bench.memory --model PKG --backend openvino --target openvino \
        --precision fp16 --iters 20

which prints one JSON line.  Fields (MiB = 2**20 bytes):

* ``baseline_rss_mb``  RSS after importing numpy, btseg's runtime/package code and the
  backend's library, before any model is loaded: what the interpreter costs anyway;
* ``loaded_rss_mb``    RSS after the Segmenter is loaded;
* ``peak_rss_mb``      the process's RSS high-water mark after loading and ``iters`` calls
  of ``segment()`` (``VmHWM`` on Linux, see :func:`_maxrss_mb` for why not ``ru_maxrss``);
* ``model_peak_mb``    ``peak_rss_mb - baseline_rss_mb``: the model's own cost;
* ``gpu_peak_mb``      ``torch.cuda.max_memory_allocated`` (torch backend on CUDA only).

:func:`measure_memory` is the parent side: it runs the child and parses its JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# the library each backend imports; imported before the baseline so it is not counted as model


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _maxrss_mb() -> float:
    """This process's peak RSS.

    Linux: ``VmHWM`` from /proc/self/status, the high-water mark of *this* address space.
    Not ``ru_maxrss``: Linux carries the parent's high-water mark into the child across
    vfork + exec (what ``subprocess`` uses), so a child spawned by a 2 GB parent would
    report >= 2 GB.  Elsewhere ``getrusage`` is all there is (macOS reports bytes).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def probe(model: str, backend: str, target: str, precision: str, iters: int = 20,
          device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """The child side: import, measure the baseline, load, run, measure the peak."""
    import importlib

    import numpy as np

    import btseg.package  # noqa: F401 - part of the baseline every artifact pays
    import btseg.runtime  # noqa: F401
    from btseg.specs import BACKEND_SPECS

    spec = BACKEND_SPECS.get(backend)
    lib = spec.package if spec else None
    if lib:
        try:
            importlib.import_module(lib)
        except ImportError:
            pass  # the load below raises the clear BackendUnavailableError
    baseline = _rss_mb()
    from btseg.bench import open_segmenter
    from btseg.machine import probe_frame

    t0 = time.perf_counter()
    seg = open_segmenter(model, backend, target, precision, device=device, threads=threads)
    load_s = time.perf_counter() - t0
    loaded = _rss_mb()
    h, w = btseg.package.load_package(model).config.input_size
    # a plausible cart frame: larger than the network input, so resize buffers count too
    image = probe_frame((max(h, 2 * h), max(w, 2 * w)))
    for _ in range(max(1, iters)):
        seg.segment(image)
    out = {"pid": os.getpid(), "baseline_rss_mb": round(baseline, 1), "loaded_rss_mb": round(loaded, 1),
           # torch costs ~200 MB RSS: say when loading a non-torch artifact pulled it in
           "torch_imported": "torch" in sys.modules,
           "peak_rss_mb": round(_maxrss_mb(), 1), "load_s": round(load_s, 3), "iters": iters}
    out["model_peak_mb"] = round(out["peak_rss_mb"] - out["baseline_rss_mb"], 1)
    out["gpu_peak_mb"] = None
    if str(device).startswith("cuda") and backend == "torch":
        import torch

        out["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def measure_memory(model: str | Path, backend: str, target: str, precision: str, iters: int = 20,
                   device: str = "cpu", threads: int | None = None, timeout: float = 600.0) -> dict[str, Any]:
    """Run :func:`probe` in a fresh interpreter; returns its dict plus ``status``.

    On failure ``status`` is ``"failed"`` and ``reason`` holds the child's last error line.
    """
    cmd = [sys.executable, "-m", "btseg.bench.memory", "--model", str(model), "--backend", backend,
           "--target", target, "--precision", precision, "--iters", str(iters), "--device", device]
    if threads:
        cmd += ["--threads", str(threads)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "reason": f"memory probe timed out after {timeout:.0f} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        err = [ln for ln in (r.stderr or r.stdout).strip().splitlines() if ln.strip()]
        return {"status": "failed", "reason": (err[-1] if err else f"exit code {r.returncode}")[:300]}
    out = json.loads(lines[-1])
    out["status"] = "ok"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m btseg.bench.memory", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model package directory")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--precision", required=True)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args(argv)
    from btseg.errors import BtsegError

    try:
        res = probe(a.model, a.backend, a.target, a.precision, a.iters, a.device, a.threads)
    except BtsegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
