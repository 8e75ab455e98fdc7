"""TensorRT (>= 10) backend: a serialized engine on one CUDA device, via pycuda.

* ``tensorrt`` and ``pycuda`` are imported inside :meth:`TensorRTBackend.load` only (through
  :func:`btseg.runtime.backend.require`); a missing one raises
  :class:`BackendUnavailableError` naming it.
* An engine only runs on the TensorRT version and GPU model that built it.  The manifest
  record's ``extra`` (``tensorrt_version`` / ``tensorrt``, ``gpu`` / ``gpu_name``,
  ``compute_capability``) is checked against this machine before deserialising, and a
  mismatch is refused with "rebuild on the target".  The record comes from the
  ``extra=`` option (the Segmenter passes it) or from the ``manifest.json`` found next to
  the engine.
* Name-based I/O (``num_io_tensors`` / ``get_tensor_name`` / ``get_tensor_mode``),
  ``set_tensor_address`` + ``execute_async_v3`` on one CUDA stream.  Pinned host buffers and
  device buffers are sized once for the profile's maximum batch and reused: no allocation
  per frame.
* Thread safety: one execution context and one set of buffers, so :meth:`infer` holds a
  lock (and pushes the device's primary CUDA context onto the calling thread).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError
from btseg.io import read_json
from btseg.runtime.backend import require


def _first(d: dict[str, Any], *keys: str) -> Any:
    return next((d[k] for k in keys if d.get(k) not in (None, "")), None)


def _same_version(built: str, here: str) -> bool:
    """Engines are tied to major.minor.patch; the build number may differ."""
    return str(built).split(".")[:3] == str(here).split(".")[:3]


def check_compatible(extra: dict[str, Any], trt_version: str, gpu_name: str, capability: tuple[int, int]) -> None:
    """Refuse an engine built for another TensorRT version or GPU (ArtifactError)."""
    built_trt = _first(extra, "tensorrt_version", "tensorrt", "trt_version")
    if built_trt and not _same_version(built_trt, trt_version):
        raise ArtifactError(f"engine built with TensorRT {built_trt}, this machine has {trt_version}: "
                            "rebuild on the target (btseg-export --target tensorrt)")
    built_gpu = _first(extra, "gpu", "gpu_name", "device_name")
    if built_gpu and str(built_gpu).strip() != gpu_name.strip():
        raise ArtifactError(f"engine built on GPU {built_gpu!r}, this machine has {gpu_name!r}: "
                            "rebuild on the target (btseg-export --target tensorrt)")
    built_cc = _first(extra, "compute_capability", "sm")
    if built_cc and str(built_cc).replace("sm_", "").replace(".", "") != f"{capability[0]}{capability[1]}":
        raise ArtifactError(f"engine built for compute capability {built_cc}, this GPU is "
                            f"{capability[0]}.{capability[1]}: rebuild on the target")


def _manifest_extra(engine: Path) -> dict[str, Any]:
    """The ``extra`` of the manifest record that lists ``engine``, if one is found nearby."""
    for root in (engine.parent, engine.parent.parent):
        man = root / "manifest.json"
        if man.is_file():
            for rec in read_json(man).get("artifacts", []):
                if (root / rec.get("file", "")).resolve() == engine.resolve():
                    return dict(rec.get("extra") or {})
    return {}


class TensorRTBackend:
    """A deserialized engine with preallocated pinned/device buffers."""

    name = "tensorrt"

    def __init__(self, cuda: Any, ctx: Any, engine: Any, context: Any, stream: Any, io: tuple[str, str],
                 buffers: dict[str, tuple[np.ndarray, Any]], artifact: Path, device: str, gpu: str,
                 version: str) -> None:
        self._cuda, self._ctx, self._engine, self._context, self._stream = cuda, ctx, engine, context, stream
        self._input, self._output = io
        self._buffers = buffers  # name -> (pinned host array, device allocation), sized once
        self._artifact, self._device, self._gpu, self._version = artifact, device, gpu, version
        self._max_batch = buffers[self._input][0].shape[0]
        self._lock = threading.Lock()

    @classmethod
    def load(cls, artifact: Path, device: str = "cuda", threads: int | None = None,
             extra: dict[str, Any] | None = None, **options: Any) -> "TensorRTBackend":
        """Deserialize ``artifact`` (``.engine``/``.plan``) on ``cuda[:N]``."""
        trt = require("tensorrt", "tensorrt", "tensorrt")
        cuda = require("pycuda.driver", "tensorrt", "tensorrt")
        kind, _, idx = device.partition(":")
        if kind not in ("cuda", "gpu"):
            raise ConfigError(f"tensorrt: device {device!r}; expected cuda[:N]")
        if int(trt.__version__.split(".")[0]) < 10:
            raise BackendUnavailableError(f"tensorrt {trt.__version__}: btseg needs TensorRT >= 10")
        path = Path(artifact)
        if not path.is_file():
            raise ArtifactError(f"{path}: TensorRT engine not found")
        try:
            cuda.init()
            dev = cuda.Device(int(idx or 0))
        except cuda.Error as e:
            raise BackendUnavailableError(f"tensorrt: no usable CUDA device {device!r} ({e})") from e
        check_compatible(extra if extra is not None else _manifest_extra(path), trt.__version__,
                         dev.name(), dev.compute_capability())
        ctx = dev.retain_primary_context()
        ctx.push()
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            engine = trt.Runtime(logger).deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise ArtifactError(f"{path}: TensorRT could not deserialize it; rebuild on the target")
            context = engine.create_execution_context()
            stream = cuda.Stream()
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if n not in inputs]
            buffers = {}
            for name in inputs + outputs:  # inputs first: output shapes follow the input shapes set
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                if name in inputs:
                    shape = tuple(engine.get_tensor_shape(name))
                    if -1 in shape:
                        shape = tuple(engine.get_tensor_profile_shape(name, 0)[2])  # the profile's max
                    context.set_input_shape(name, shape)
                else:
                    shape = tuple(context.get_tensor_shape(name))
                host = cuda.pagelocked_empty(shape, dtype)
                mem = cuda.mem_alloc(host.nbytes)
                context.set_tensor_address(name, int(mem))
                buffers[name] = (host, mem)
        finally:
            ctx.pop()
        if len(inputs) != 1 or not outputs:
            raise ArtifactError(f"{path}: expected one input and one output tensor, got {inputs} -> {outputs}")
        return cls(cuda, ctx, engine, context, stream, (inputs[0], outputs[0]), buffers, path, device,
                   dev.name(), trt.__version__)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> NCHW float32 logits; batches above the engine's maximum are split."""
        if len(batch) > self._max_batch:
            return np.concatenate([self.infer(batch[i:i + self._max_batch])
                                   for i in range(0, len(batch), self._max_batch)])
        cuda, n = self._cuda, len(batch)
        h_in, d_in = self._buffers[self._input]
        h_out, d_out = self._buffers[self._output]
        with self._lock:
            self._ctx.push()
            try:
                self._context.set_input_shape(self._input, (n, *h_in.shape[1:]))
                h_in[:n] = batch  # casts to the engine's input dtype in place
                cuda.memcpy_htod_async(d_in, h_in[:n], self._stream)
                if not self._context.execute_async_v3(self._stream.handle):
                    raise ArtifactError(f"{self._artifact}: TensorRT execution failed")
                cuda.memcpy_dtoh_async(h_out[:n], d_out, self._stream)
                self._stream.synchronize()
                return h_out[:n].astype(np.float32, copy=True)
            finally:
                self._ctx.pop()

    def info(self) -> dict[str, Any]:
        h_in = self._buffers[self._input][0]
        return {"backend": self.name, "artifact": str(self._artifact), "device": self._device,
                "providers": [self._gpu], "threads": None, "max_batch": self._max_batch,
                "io_dtype": str(h_in.dtype), "version": self._version}
