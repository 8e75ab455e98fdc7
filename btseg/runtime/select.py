"""``Segmenter.load(select="fastest")``: pick the artifact that is fastest *on this machine*.

The default order (:data:`btseg.specs.PREFERENCE`) is a guess made once for every CPU: INT8
before FP32.  It is wrong where the int8 kernels lose, e.g. ONNX Runtime on a small model
with 8-channel layers on an AVX2-only CPU (the bundled 128-px demo student: INT8 1.6x
slower than FP32, benchmarks/RESULTS.md).  ``fastest`` loads every usable candidate (the
same ones ``auto`` would try, each integrity-checked first), times them **round-robin in
blocks** on a fixed preprocessed frame, keeps the one with the lowest median and closes the
others.  The choice and its timings are cached per machine in
``<cache root>/select/<key>.json`` (cache root: :func:`btseg.runtime.cache.cache_root`),
keyed by the package weights' and every candidate's sha256, the device, the thread count,
the backend options, the backend library versions and the CPU (model name and feature
flags).  So the second start loads only the winner; any change to those re-measures.
``select="fastest-fresh"`` re-measures and overwrites the cached choice.

Only speed is compared: every candidate already passed (or was not given) the export's
accuracy verification, and failed ones are never candidates.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from btseg.machine import cpu_fingerprint, library_versions, probe_frame
from btseg.timing import round_robin, until

SELECT_MODES = ("preference", "fastest", "fastest-fresh")


# the libraries whose version changes which artifact is fastest
VERSIONED = ("onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "torch")


def _versions() -> dict[str, str]:
    return {k: v for k, v in library_versions(VERSIONED).items() if v is not None}


def selection_key(weights_sha256: str, candidates: list[tuple[str, Any]], device: str, threads: int | None,
                  options: dict[str, Any]) -> str:
    """sha256 over everything the fastest choice depends on (see the module docstring)."""
    doc = {"weights": weights_sha256, "candidates": [[name, rec.id, rec.sha256] for name, rec in candidates],
           "device": device, "threads": threads, "options": {k: repr(v) for k, v in sorted(options.items())},
           "versions": _versions(), "cpu": cpu_fingerprint()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cache_file(key: str) -> Path:
    from btseg.runtime.cache import cache_root

    return cache_root() / "select" / f"{key}.json"


def read_choice(key: str) -> dict[str, Any] | None:
    """The cached choice, or None when there is none or it is unreadable (then re-measured).
    Read as a regular file of at most 1 MiB (a FIFO or a link to ``/dev/zero`` is refused
    at once: :func:`btseg.io.read_regular`)."""
    from btseg.errors import ArtifactError
    from btseg.io import read_regular

    try:
        doc = json.loads(read_regular(cache_file(key), 1 << 20, "select record"))
    except (ArtifactError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("winner"), str) else None


def write_choice(key: str, doc: dict[str, Any]) -> str:
    """Store the choice atomically; returns a one-line state (a read-only cache is not an error)."""
    from btseg.io import write_json

    path = cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, doc)
    except OSError as e:
        return f"not cached: cannot write {path} ({e.strerror or e})"
    return f"cached: {path}"


def time_candidates(infer: dict[str, Callable[[], Any]], budget_s: float = 0.6, block: int = 3,
                    min_rounds: int = 3, max_rounds: int = 20) -> dict[str, float]:
    """Median ms per call of each ``infer[name]()``, round-robin in blocks of ``block`` calls
    (:func:`btseg.timing.round_robin`), for at least ``min_rounds`` rounds and until about
    ``budget_s`` seconds per candidate have passed."""
    for f in infer.values():
        f()  # first call: lazy allocations, JIT
    stop = until(min_rounds, max_rounds, seconds=budget_s * len(infer))
    return round_robin(infer, block, stop).median()


def frame_for(spec: Any) -> np.ndarray:
    """The fixed frame candidates are timed on: the probe frame at the model's input size."""
    from btseg.preprocess import preprocess

    return preprocess(probe_frame(spec.size), spec)[None]


def selection_record(winner: str, timings: dict[str, float], cached: bool, state: str) -> dict[str, Any]:
    """What ``Segmenter.info()["selection"]`` shows."""
    return {"mode": "fastest", "winner": winner, "median_ms": {k: round(v, 3) for k, v in timings.items()},
            "cached": cached, "cache": state}


def load_fastest(pkg: Any, candidates: list[tuple[str, Any]], open_backend: Callable[[str, Any], Any], *,
                 strict: bool, device: str, threads: int | None, options: dict[str, Any],
                 fresh: bool) -> tuple[Any, Any, list[str], dict[str, Any]] | None:
    """The cached winner, or every loadable candidate opened and timed (module docstring).

    ``open_backend(name, record)`` integrity-checks and loads one candidate (an
    :class:`~btseg.errors.IntegrityError` propagates: a refusal, never a skip).  A candidate whose
    backend is unavailable is skipped, or raises when ``strict`` (an explicit backend).
    Returns ``(record, backend, skipped, selection)``, or None when no candidate loads.
    """
    from btseg.errors import BackendUnavailableError
    from btseg.preprocess import PreprocessSpec

    labelled = [(f"{name} {rec.target}/{rec.precision}", name, rec) for name, rec in candidates]
    key = selection_key(pkg.config.weights_sha256, candidates, device, threads, options)
    doc = None if fresh else read_choice(key)
    if doc is not None:
        hit = next(((n, r) for lab, n, r in labelled if lab == doc["winner"]), None)
        if hit is not None:
            return hit[1], open_backend(*hit), [], selection_record(doc["winner"], doc.get("median_ms") or {}, True,
                                                                    f"hit: {cache_file(key)}")
    loaded: dict[str, tuple[Any, Any]] = {}
    skipped: list[str] = []
    for lab, name, rec in labelled:
        try:
            loaded[lab] = (rec, open_backend(name, rec))
        except BackendUnavailableError as e:
            if strict:
                raise
            skipped.append(f"{lab}: {e}")
    if not loaded:
        return None
    frames = {k: frame_for(PreprocessSpec.from_dict(rec.preprocess) if rec.preprocess else pkg.config.preprocess)
              for k, (rec, _) in loaded.items()}
    timings = time_candidates({k: (lambda b=be, x=frames[k]: b.infer(x)) for k, (_, be) in loaded.items()})
    winner = min(timings, key=timings.__getitem__)
    state = write_choice(key, {"winner": winner, "median_ms": timings, "threads": threads, "device": device,
                               "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    rec, backend = loaded.pop(winner)
    loaded.clear()  # the losers' sessions / compiled models go now
    return rec, backend, skipped, selection_record(winner, timings, False, state)
