"""Facts about this machine, collected one way for every caller.

Bottom layer (numpy only; nothing optional is imported unless asked): the runtime's
``select="fastest"`` cache key (:mod:`btseg.runtime.select`), export's toolchain record
(:mod:`btseg.export.plan`), the bench's system block (:mod:`btseg.bench.sysinfo`) and the
``benchmarks/`` scripts read the CPU, library versions and the probe frame from here.

Example::

    >>> probe_frame((4, 6)).shape, probe_frame((4, 6)).dtype
    ((4, 6), dtype('uint8'))
    >>> bool((probe_frame((4, 6)) == probe_frame((4, 6))).all())
    True
"""

from __future__ import annotations

import importlib
import json
import platform
from functools import lru_cache
from typing import Iterable

import numpy as np

CPUINFO = "/proc/cpuinfo"
PROBE_SEED = 0


@lru_cache(maxsize=1)
def cpuinfo() -> dict[str, str]:
    """The first value of every key of Linux ``/proc/cpuinfo`` (``{}`` where there is none)."""
    try:
        with open(CPUINFO, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if sep and key.strip() not in out:
            out[key.strip()] = val.strip()
    return out


def cpu_model() -> str | None:
    """The CPU's model name (x86 ``model name``, ARM ``Model`` / ``Hardware``), else ``platform``'s."""
    info = cpuinfo()
    found = next((info[k] for k in ("model name", "Model", "Hardware") if info.get(k)), None)
    return found or platform.processor() or None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); empty where unknown."""
    info = cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def cpu_fingerprint() -> str:
    """CPU model name and feature flags as one string: what a per-machine cache is keyed on."""
    info = cpuinfo()
    if not info:
        return f"{platform.machine()} {platform.processor()}"
    fields = {k: (" ".join(sorted(info[k].split())) if k in ("flags", "Features") else info[k])
              for k in ("model name", "flags", "Features", "CPU part") if k in info}
    return json.dumps(fields, sort_keys=True)


def library_versions(distributions: Iterable[str]) -> dict[str, str | None]:
    """Installed version of each distribution (``importlib.metadata``, nothing imported), None if absent."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in distributions:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def module_versions(modules: Iterable[str]) -> dict[str, str | None]:
    """``__version__`` of each module as it imports here (None if it does not import: a broken
    install shows as missing rather than stopping a benchmark)."""
    out: dict[str, str | None] = {}
    for name in modules:
        try:
            mod = importlib.import_module(name)
            out[name] = str(getattr(mod, "__version__", None) or getattr(mod, "get_version", lambda: None)())
        except Exception:  # noqa: BLE001 - a broken optional install must not stop a benchmark
            out[name] = None
    return out


def probe_frame(shape: tuple[int, int], seed: int = PROBE_SEED) -> np.ndarray:
    """The seeded uint8 noise image every timing runs on (same pixels on every machine)."""
    return np.random.default_rng(seed).integers(0, 256, tuple(shape), dtype=np.uint8)


def probe_input(shape: Iterable[int], seed: int = PROBE_SEED) -> np.ndarray:
    """A seeded float32 tensor in [0, 1) for raw graph timing (a model's input, already preprocessed)."""
    return np.random.default_rng(seed).random(list(shape), dtype=np.float32)
