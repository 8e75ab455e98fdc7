"""TensorRT (>= 10, incl. 11) backend: a serialized engine on one CUDA device, via cuda-python.

* ``tensorrt`` and NVIDIA's ``cuda-bindings`` (``cuda.bindings.runtime``, the CUDA runtime
  API that TensorRT's own samples use; wheels for CUDA 12 and 13) are imported inside
  :meth:`TensorRTBackend.load` only; a missing one raises :class:`BackendUnavailableError`
  naming it.
* Every CUDA call's status is checked (:func:`cuda_call`); every TensorRT call that can fail
  runs under :func:`trt_guard`, which turns the bindings' exceptions (and a None where an
  object was expected) into btseg's typed errors carrying the last error lines of the
  TensorRT log (:func:`make_logger`).
* An engine only runs on the TensorRT version and GPU model that built it.  The manifest
  record's ``extra`` (``tensorrt``, ``gpu``, ``compute_capability``) is checked against this
  machine before deserialising, and a mismatch is refused with "rebuild on the target".
* Name-based I/O, ``set_tensor_address`` + ``execute_async_v3`` on one CUDA stream.  Pinned
  host buffers and device buffers are sized once for the profile's maximum batch and reused.
* Thread safety: one execution context and one set of buffers, so :meth:`infer` holds a
  lock and makes the engine's device current on the calling thread.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from btseg.errors import ArtifactError, BackendUnavailableError, BtsegError, ConfigError
from btseg.package import ArtifactRecord, EngineBuild
from btseg.runtime.cache import read_verified
from btseg.runtime.backend import require

LOG = logging.getLogger("btseg.tensorrt")
# what the TensorRT bindings raise: pybind11 maps C++ exceptions to RuntimeError/ValueError/
# TypeError (a factory returning nullptr), numpy shape errors are ValueError, an API that a
# version lacks is AttributeError
TRT_EXCEPTIONS = (RuntimeError, TypeError, ValueError, AttributeError, MemoryError, OSError)


def make_logger(trt: Any, keep: int = 20) -> Any:
    """A ``trt.ILogger`` that forwards to :mod:`logging` and keeps the last ``keep`` errors
    (``.errors``) and warnings (``.warnings``) to put into btseg's error messages."""
    levels = {trt.ILogger.INTERNAL_ERROR: logging.ERROR, trt.ILogger.ERROR: logging.ERROR,
              trt.ILogger.WARNING: logging.WARNING, trt.ILogger.INFO: logging.DEBUG,
              trt.ILogger.VERBOSE: logging.DEBUG}

    class KeepingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: collections.deque[str] = collections.deque(maxlen=keep)
            self.warnings: collections.deque[str] = collections.deque(maxlen=keep)

        def log(self, severity: Any, msg: str) -> None:
            level = levels.get(severity, logging.ERROR)
            if level >= logging.ERROR:
                self.errors.append(str(msg))
            elif level == logging.WARNING:
                self.warnings.append(str(msg))
            LOG.log(level, "TensorRT: %s", msg)

        def tail(self) -> str:
            """`` [TensorRT log: ...]`` with the kept error lines, or ``""``."""
            return f" [TensorRT log: {' | '.join(self.errors)}]" if self.errors else ""

    return KeepingLogger()


@contextlib.contextmanager
def trt_guard(what: str, logger: Any, error: type[BtsegError] = ArtifactError) -> Iterator[None]:
    """Re-raise what TensorRT raises inside the block as ``error(what: ... [TensorRT log])``."""
    try:
        yield
    except BtsegError:
        raise
    except TRT_EXCEPTIONS as e:
        tail = logger.tail() if logger is not None else ""
        raise error(f"{what}: {type(e).__name__}: {e}{tail}") from e


def expect(obj: Any, what: str, logger: Any, error: type[BtsegError] = ArtifactError) -> Any:
    """``obj`` unless it is None (TensorRT's way of failing), else ``error`` with the log."""
    if obj is None:
        raise error(f"{what} failed{logger.tail() if logger is not None else ''}")
    return obj


def cuda_call(cudart: Any, result: Any, what: str, error: type[BtsegError] = BackendUnavailableError) -> Any:
    """Check a ``cuda.bindings.runtime`` result tuple ``(cudaError_t, *values)``.

    Returns the single value (or the tuple of values, or None); raises ``error`` naming the
    CUDA error (``cudaErrorNoDevice: no CUDA-capable device is detected``) otherwise.
    """
    err, values = result[0], tuple(result[1:])
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        text = cudart.cudaGetErrorString(err)[1]
        dec = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else str(b)  # noqa: E731
        raise error(f"{what}: {dec(name)}: {dec(text)}")
    return values[0] if len(values) == 1 else (values or None)


def _same_version(built: str, here: str) -> bool:
    """Engines are tied to major.minor.patch; the build number may differ."""
    return str(built).split(".")[:3] == str(here).split(".")[:3]


def check_compatible(built: EngineBuild | dict[str, Any], trt_version: str, gpu_name: str,
                     capability: tuple[int, int]) -> None:
    """Refuse an engine built for another TensorRT version or GPU (ArtifactError).

    ``built``: the record's :attr:`~btseg.package.ArtifactRecord.engine_build` (or the
    ``extra`` dict it is read from, spelled as export writes it)."""
    if isinstance(built, dict):
        built = EngineBuild.from_extra(built)
    built_trt, built_gpu, built_cc = built.tensorrt, built.gpu, built.compute_capability
    if built_trt and not _same_version(built_trt, trt_version):
        raise ArtifactError(f"engine built with TensorRT {built_trt}, this machine has {trt_version}: "
                            "rebuild on the target (btseg-export --target tensorrt)")
    if built_gpu and str(built_gpu).strip() != gpu_name.strip():
        raise ArtifactError(f"engine built on GPU {built_gpu!r}, this machine has {gpu_name!r}: "
                            "rebuild on the target (btseg-export --target tensorrt)")
    if built_cc and str(built_cc).replace("sm_", "").replace(".", "") != f"{capability[0]}{capability[1]}":
        raise ArtifactError(f"engine built for compute capability {built_cc}, this GPU is "
                            f"{capability[0]}.{capability[1]}: rebuild on the target")


def open_device(cudart: Any, device: str) -> tuple[int, str, tuple[int, int]]:
    """``cuda[:N]`` -> (N, GPU name, compute capability), the device made current."""
    kind, _, idx = device.partition(":")
    if kind not in ("cuda", "gpu") or not (idx or "0").isdigit():
        raise ConfigError(f"tensorrt: device {device!r}; expected cuda[:N]")
    n = int(idx or 0)
    count = cuda_call(cudart, cudart.cudaGetDeviceCount(), f"tensorrt: no usable CUDA device {device!r}")
    if n >= count:
        raise BackendUnavailableError(f"tensorrt: device {device!r}, this machine has {count} CUDA device(s)")
    cuda_call(cudart, cudart.cudaSetDevice(n), f"tensorrt: cannot use CUDA device {n}")
    prop = cuda_call(cudart, cudart.cudaGetDeviceProperties(n), f"tensorrt: CUDA device {n} properties")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return n, name, (int(prop.major), int(prop.minor))


class TensorRTBackend:
    """A deserialized engine with preallocated pinned/device buffers."""

    name = "tensorrt"

    def __init__(self, cudart: Any, engine: Any, context: Any, stream: Any, io: tuple[str, str],
                 buffers: dict[str, tuple[np.ndarray, int]], artifact: Path, device: tuple[int, str],
                 gpu: str, version: str, logger: Any) -> None:
        self._cudart, self._engine, self._context, self._stream = cudart, engine, context, stream
        self._input, self._output = io
        self._buffers = buffers  # name -> (pinned host array, device pointer), sized once
        self._artifact, (self._index, self._device), self._gpu, self._version = artifact, device, gpu, version
        self._logger = logger
        self._max_batch = buffers[self._input][0].shape[0]
        self._lock = threading.Lock()

    @classmethod
    def load(cls, artifact: Path, device: str = "cuda", threads: int | None = None,
             record: ArtifactRecord | None = None, **options: Any) -> "TensorRTBackend":
        """Deserialize ``artifact`` (``.engine``/``.plan``) on ``cuda[:N]``.

        ``record``: its manifest record (the Segmenter passes it, read and validated by
        :mod:`btseg.package`): an engine built with another TensorRT or for another GPU is
        refused before deserializing.  Without one (export verifying what it just built)
        TensorRT's own deserialization is the check."""
        trt = require("tensorrt", "tensorrt", "tensorrt")
        cudart = require("cuda.bindings.runtime", "tensorrt", "tensorrt")
        path = Path(artifact)
        if not path.is_file():
            raise ArtifactError(f"{path}: TensorRT engine not found")
        index, gpu, capability = open_device(cudart, device)
        if record is not None:
            check_compatible(record.engine_build, trt.__version__, gpu, capability)
        logger = make_logger(trt)
        with trt_guard(f"{path}: TensorRT runtime", logger, BackendUnavailableError):
            runtime = expect(trt.Runtime(logger), "creating the TensorRT runtime", logger, BackendUnavailableError)
        blob = read_verified(path, options.get("files"))  # the verified bytes, a regular bounded file
        with trt_guard(f"{path}: loading the engine", logger):
            engine = expect(runtime.deserialize_cuda_engine(blob),
                            f"{path}: deserializing (rebuild on the target)", logger)
            context = expect(engine.create_execution_context(), f"{path}: creating an execution context", logger)
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ArtifactError(f"{path}: expected one input and one output tensor, got {inputs} -> {outputs}")
        stream = cuda_call(cudart, cudart.cudaStreamCreate(), "tensorrt: creating a CUDA stream")
        buffers = _allocate(trt, cudart, engine, context, inputs[0], outputs[0], logger, path)
        return cls(cudart, engine, context, stream, (inputs[0], outputs[0]), buffers, path, (index, device),
                   gpu, trt.__version__, logger)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> NCHW float32 logits; batches above the engine's maximum are split."""
        if len(batch) > self._max_batch:
            return np.concatenate([self.infer(batch[i:i + self._max_batch])
                                   for i in range(0, len(batch), self._max_batch)])
        cudart, n = self._cudart, len(batch)
        h_in, d_in = self._buffers[self._input]
        h_out, d_out = self._buffers[self._output]
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        where = f"{self._artifact}: inference"
        with self._lock:
            cuda_call(cudart, cudart.cudaSetDevice(self._index), where, ArtifactError)
            with trt_guard(where, self._logger):
                if not self._context.set_input_shape(self._input, (n, *h_in.shape[1:])):
                    raise ArtifactError(f"{where}: batch of {n} {tuple(batch.shape)} is outside the engine's "
                                        f"profile (max batch {self._max_batch}){self._logger.tail()}")
                h_in[:n] = batch  # casts to the engine's input dtype in place
            cuda_call(cudart, cudart.cudaMemcpyAsync(d_in, h_in.ctypes.data, h_in[:n].nbytes, h2d, self._stream),
                      where, ArtifactError)
            with trt_guard(where, self._logger):
                ok = self._context.execute_async_v3(int(self._stream))
            if not ok:
                raise ArtifactError(f"{where}: TensorRT execution failed{self._logger.tail()}")
            cuda_call(cudart, cudart.cudaMemcpyAsync(h_out.ctypes.data, d_out, h_out[:n].nbytes, d2h, self._stream),
                      where, ArtifactError)
            cuda_call(cudart, cudart.cudaStreamSynchronize(self._stream), where, ArtifactError)
            return h_out[:n].astype(np.float32, copy=True)

    def info(self) -> dict[str, Any]:
        h_in = self._buffers[self._input][0]
        return {"backend": self.name, "artifact": str(self._artifact), "device": self._device,
                "providers": [self._gpu], "threads": None, "max_batch": self._max_batch,
                "io_dtype": str(h_in.dtype), "version": self._version}


def _pinned(cudart: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A numpy array over page-locked host memory (``cudaMallocHost``), freed with the array."""
    nbytes = max(int(np.prod(shape)) * dtype.itemsize, 1)
    ptr = cuda_call(cudart, cudart.cudaMallocHost(nbytes), "tensorrt: pinned host buffer")
    raw = (ctypes.c_byte * nbytes).from_address(int(ptr))
    arr = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape))).reshape(shape)
    _finalize_with(arr, lambda: cudart.cudaFreeHost(ptr))
    return arr


def _finalize_with(owner: Any, free: Any) -> None:
    import weakref

    base = owner.base if owner.base is not None else owner
    weakref.finalize(base, free)


def _allocate(trt: Any, cudart: Any, engine: Any, context: Any, inp: str, out: str, logger: Any,
              path: Path) -> dict[str, tuple[np.ndarray, int]]:
    """Pinned host + device buffers for the profile's maximum shapes, bound to ``context``."""
    buffers = {}
    for name in (inp, out):  # input first: the output's shape follows the input shape set
        with trt_guard(f"{path}: tensor {name!r}", logger):
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if name == inp:
                shape = tuple(engine.get_tensor_shape(name))
                if -1 in shape:
                    shape = tuple(engine.get_tensor_profile_shape(name, 0)[2])  # the profile's max
                if not context.set_input_shape(name, shape):
                    raise ArtifactError(f"{path}: cannot set input shape {shape}{logger.tail()}")
            else:
                shape = tuple(context.get_tensor_shape(name))
        host = _pinned(cudart, shape, dtype)
        dev = cuda_call(cudart, cudart.cudaMalloc(max(host.nbytes, 1)), f"tensorrt: device buffer for {name!r}")
        _finalize_with(host, lambda d=dev: cudart.cudaFree(d))
        with trt_guard(f"{path}: binding {name!r}", logger):
            if not context.set_tensor_address(name, int(dev)):
                raise ArtifactError(f"{path}: cannot bind tensor {name!r}{logger.tail()}")
        buffers[name] = (host, int(dev))
    return buffers
