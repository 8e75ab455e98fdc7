"""The backend protocol and the name -> module map.

A backend runs one artifact: ``load(artifact, device, threads)``, ``infer(batch) -> logits``
(NCHW float32 in, NCHW float32 logits out), ``info() -> dict``.  One module per backend
(``btseg/runtime/<name>_backend.py``), imported only when that backend is asked for, so a
cart with only onnxruntime installed never imports torch, openvino or tensorrt.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from btseg.errors import BackendUnavailableError, ConfigError
from btseg.specs import BACKEND_SPECS

# backend name -> its spec (module, class, the artifact targets it can run, ...)
BACKENDS = BACKEND_SPECS


@runtime_checkable
class Backend(Protocol):
    name: str

    @classmethod
    def load(cls, artifact: Path, device: str = "cpu", threads: int | None = None, **options: Any) -> "Backend": ...

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


def backend_class(name: str) -> type:
    """Import and return the class of backend ``name``.

    Raises:
        ConfigError: unknown backend name.
        BackendUnavailableError: its Python package is not installed (names the package).
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    spec = BACKENDS[name]
    return getattr(importlib.import_module(spec.module), spec.cls)


def load_backend(name: str, artifact: str | Path, device: str = "cpu", threads: int | None = None,
                 **options: Any) -> Backend:
    """Load ``artifact`` with backend ``name``."""
    return backend_class(name).load(Path(artifact), device=device, threads=threads, **options)


def require(package: str, extra: str, backend: str) -> Any:
    """Import an optional dependency or raise a clear :class:`BackendUnavailableError`.

    The install hint is the backend's spec (``extra`` is kept for callers' readability).
    Only ImportError is caught: a package that is installed but broken shows its own error.
    """
    try:
        return importlib.import_module(package)
    except ImportError as e:
        hint = BACKENDS[backend].install_hint if backend in BACKENDS else f"pip install '{package}'"
        raise BackendUnavailableError(
            f"backend {backend!r} needs the Python package {package!r}: {hint} ({e})") from e
