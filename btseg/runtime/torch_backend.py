"""PyTorch eager backend: runs the package weights directly, no exported artifact.

``artifact`` is the model package directory (or its ``model.safetensors``); the model is
rebuilt with :meth:`btseg.package.ModelPackage.build_model`.  ``compile=True`` wraps it in
``torch.compile`` (first call slow; worth it only for long cine sessions).

Thread safety: a module in eval mode under ``torch.inference_mode`` holds no mutable state
during ``forward``, so concurrent :meth:`infer` calls are safe.  A compiled module is
guarded by a lock (its guards and recompilation are not documented as thread-safe).

Note that ``threads`` sets ``torch.set_num_threads`` which is process-wide.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from btseg.errors import ArtifactError, BackendUnavailableError


class TorchBackend:
    """Eager (optionally compiled) PyTorch inference on ``cpu`` or ``cuda[:N]``."""

    name = "torch"

    def __init__(self, model: Any, device: str, threads: int | None, compiled: bool, root: Path) -> None:
        self._model = model
        self._device = device
        self._threads = threads
        self._compiled = compiled
        self._root = root
        self._lock = threading.Lock() if compiled else contextlib.nullcontext()

    @classmethod
    def load(cls, artifact: Path, device: str = "cpu", threads: int | None = None,
             compile: bool = False, **options: Any) -> "TorchBackend":
        """Build the model from the package at ``artifact`` (directory or its safetensors)."""
        try:
            import torch
        except ImportError as e:
            raise BackendUnavailableError(f"backend 'torch' needs the Python package 'torch': pip install 'btseg[train]' ({e})") from e
        from btseg.package import load_package

        root = Path(artifact)
        if root.is_file():
            root = root.parent
        dev = "cuda:0" if device == "cuda" else device
        if not (dev == "cpu" or dev.startswith("cuda")):
            raise ArtifactError(f"torch backend: device {device!r}; expected cpu or cuda[:N]")
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"torch backend: device {device!r} asked for but torch sees no CUDA device")
        if threads:
            torch.set_num_threads(int(threads))
        model = load_package(root).build_model().to(dev)
        if compile:
            model = torch.compile(model)
        return cls(model, dev, threads, bool(compile), root)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> NCHW float32 logits."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
        with self._lock, torch.inference_mode():
            y = self._model(x)
        return y.float().cpu().numpy()

    def info(self) -> dict[str, Any]:
        import torch

        return {"backend": self.name, "artifact": str(self._root), "device": self._device,
                "providers": [self._device], "threads": torch.get_num_threads(),
                "compiled": self._compiled, "inference_precision": "fp32", "version": torch.__version__}
