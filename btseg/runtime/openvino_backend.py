"""OpenVINO backend: an IR (``model.xml`` + ``.bin``) or ONNX artifact on CPU/GPU/NPU/AUTO.

Compiled with ``PERFORMANCE_HINT=LATENCY`` (one stream: the cart segments one frame at a
time) and ``INFERENCE_NUM_THREADS=threads``.  OpenVINO chooses the precision it really runs:
on CPUs with AMX (or AVX512-BF16) an FP32 IR may execute in bf16 by default.  :meth:`info`
reports ``INFERENCE_PRECISION_HINT`` and the per-layer runtime precisions of the compiled
model, so a benchmark records what ran, not what was exported.  Pass
``precision_hint="f32"`` to force full precision.

Throughput: ``streams=N`` compiles with ``PERFORMANCE_HINT=THROUGHPUT`` and
``NUM_STREAMS=N``; :meth:`infer_many` keeps N infer requests in flight (``start_async``
round-robin, what ``benchmark_app -api async`` does).

Fast start: the compiled blob (``export_model``) is cached in a folder per artifact under
:func:`btseg.runtime.cache.cache_root` (``$BTSEG_CACHE_DIR``, else
``$XDG_CACHE_HOME/btseg/ov``, else ``~/.cache/btseg/ov``), bound to the sha256 of every file
of the verified artifact and carrying its own sha256, which is checked on the bytes that
``import_model`` then receives; a blob that differs is rebuilt from the verified files and
:meth:`info` says so (:mod:`btseg.runtime.cache`).  ``BTSEG_OV_CACHE=off`` (or
``cache=False``) turns it off; an unwritable cache folder turns it off too, and
:meth:`info` says why.

Thread safety: an ``InferRequest`` is not thread-safe, so a call takes one from a pool of
``streams + 1`` requests created at load (a thread that finds none free waits for one) and
gives it back.  They are created up front, and pybind11's numpy API is initialised at load on the
loading thread: two threads reaching their first ``tensor.data`` at once deadlocked in
pybind11's ``gil_safe_call_once_and_store`` (seen as a hung ``predict --streams 2``).
"""

from __future__ import annotations

import queue
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError
from btseg.runtime.backend import require
from btseg.runtime import cache as C

_DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU", "auto": "AUTO"}


def ov_device(device: str) -> str:
    """btseg device (``cpu``, ``gpu``, ``gpu.1``, ``npu``, ``auto``) -> OpenVINO device name."""
    kind, dot, idx = device.lower().partition(".")
    if kind not in _DEVICES:
        raise ConfigError(f"openvino: device {device!r}; expected one of {', '.join(_DEVICES)} (GPU.N for one GPU)")
    return _DEVICES[kind] + (dot + idx if idx else "")


class OpenVINOBackend:
    """A compiled OpenVINO model plus one infer request per calling thread."""

    name = "openvino"

    def __init__(self, compiled: Any, artifact: Path, device: str, threads: int | None,
                 streams: int | None = None, cache: str = "off") -> None:
        self._compiled = compiled
        self._artifact = artifact
        self._device = device
        self._threads = threads
        self._streams = streams
        self._cache = cache
        self._pool: queue.Queue = queue.Queue()
        for _ in range((streams or 1) + 1):
            self._pool.put(compiled.create_infer_request())
        # pybind11 initialises its numpy API lazily inside a std::call_once that waits for
        # the GIL: two threads reaching their first tensor.data at once deadlock (seen with
        # predict --streams 2). Touch it once here, on the loading thread.
        try:
            np.asarray(self._pool.queue[0].get_output_tensor(0).data)
        except RuntimeError:  # a dynamic output has no data before the first inference
            pass
        shape = compiled.input(0).get_partial_shape()
        self._static_batch = shape[0].get_length() if shape.rank.is_static and shape[0].is_static else None

    @classmethod
    def load(cls, artifact: Path, device: str = "cpu", threads: int | None = None,
             precision_hint: str | None = None, streams: int | None = None, cache: bool | str | None = None,
             files: list[dict[str, Any]] | None = None, **options: Any) -> "OpenVINOBackend":
        """Read and compile ``artifact`` (``.xml`` IR or ``.onnx``).

        Args:
            device: ``cpu``, ``gpu``, ``npu`` or ``auto``.
            threads: ``INFERENCE_NUM_THREADS`` (None: OpenVINO's default).
            precision_hint: ``INFERENCE_PRECISION_HINT`` (``f32``, ``bf16``, ``f16``); None
                lets OpenVINO choose (and :meth:`info` says what it chose).
            streams: None/1: ``PERFORMANCE_HINT=LATENCY`` (one frame at a time); N > 1:
                ``THROUGHPUT`` with ``NUM_STREAMS=N`` (for :meth:`infer_many`).
            cache: None: the user cache folder (see the module docstring); a path: that
                folder; False: no model cache.
            files: the verified record's ``files`` (the cache entry is bound to them);
                None hashes the files OpenVINO will open.
        """
        ov = require("openvino", "openvino", "openvino")
        if streams is not None and int(streams) < 1:
            raise ConfigError(f"openvino: streams {streams}: expected >= 1")
        core = ov.Core()
        name = ov_device(device)
        base = name.split(".")[0]
        if base != "AUTO" and not any(d.split(".")[0] == base for d in core.available_devices):
            raise BackendUnavailableError(f"openvino {ov.__version__}: device {name} not present "
                                          f"(available: {', '.join(core.available_devices)})")
        path = Path(artifact)
        if not path.is_file():
            raise ArtifactError(f"{path}: OpenVINO artifact not found")
        if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
            raise ArtifactError(f"{path}: the IR's weights file {path.with_suffix('.bin').name} is missing")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if streams and int(streams) > 1:
            config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": int(streams)})
        if threads and base in ("CPU", "AUTO"):
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        compiled, state = _compile_cached(core, ov.__version__, path, name, config, cache, files)
        return cls(compiled, path, name, threads, int(streams) if streams else None, state)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> NCHW float32 logits, on a request from the pool."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if self._static_batch == 1 and len(x) > 1:
            return np.concatenate([self.infer(x[i:i + 1]) for i in range(len(x))])
        req = self._pool.get()
        try:
            req.infer({0: x})
            return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)
        finally:
            self._pool.put(req)

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Logits of each batch, in order, with ``streams`` infer requests in flight.

        The requests are used round-robin (``start_async`` on request ``i % N``, ``wait``
        on it before its reuse), so results come back in order with at most N batches held.
        No Python completion callback is involved: with OpenVINO 2026.4 an
        ``AsyncInferQueue`` with a Python callback aborted the interpreter at exit
        ("terminate called without an active exception") and a bench run using it hung.
        """
        jobs = max(1, int(self._streams or 1))
        requests = [self._pool.get() for _ in range(jobs)]
        try:
            yield from self._round_robin(requests, batches)
        finally:
            for r in requests:
                try:
                    r.wait()  # a consumer that stopped early leaves requests running
                except RuntimeError:  # never started
                    pass
                self._pool.put(r)

    @staticmethod
    def _round_robin(requests: list[Any], batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        jobs = len(requests)
        busy: list[bool] = [False] * jobs
        i = 0
        for x in batches:
            k = i % jobs
            if busy[k]:
                requests[k].wait()
                yield np.array(requests[k].get_output_tensor(0).data, dtype=np.float32, copy=True)
            requests[k].start_async({0: np.ascontiguousarray(x, dtype=np.float32)})
            busy[k] = True
            i += 1
        for j in range(i, i + jobs):  # drain in submission order
            k = j % jobs
            if busy[k]:
                requests[k].wait()
                busy[k] = False
                yield np.array(requests[k].get_output_tensor(0).data, dtype=np.float32, copy=True)

    def runtime_precisions(self) -> dict[str, int]:
        """How many compute layers of the compiled model run in each precision."""
        counts: Counter[str] = Counter()
        for op in self._compiled.get_runtime_model().get_ordered_ops():
            rt = op.get_rt_info()
            if "layerType" in rt and rt["layerType"].astype(str) in ("Convolution", "Deconvolution", "FullyConnected"):
                counts[rt["runtimePrecision"].astype(str) if "runtimePrecision" in rt else "?"] += 1
        return dict(counts)

    def info(self) -> dict[str, Any]:
        import openvino as ov

        def prop(key: str) -> Any:
            try:
                return self._compiled.get_property(key)
            except RuntimeError:  # not every device plugin reports every property
                return None

        hint = prop("INFERENCE_PRECISION_HINT")
        execution = prop("EXECUTION_DEVICES")
        layers = self.runtime_precisions()
        hint_name = hint.get_type_name() if hint is not None else None
        # what the convolutions really ran in (i8 for an INT8 IR even when the hint says bf16)
        actual = max(layers, key=layers.get) if layers else hint_name
        return {"backend": self.name, "artifact": str(self._artifact), "device": self._device,
                "providers": list(execution) if execution else [self._device],
                "threads": prop("INFERENCE_NUM_THREADS") or self._threads,
                "performance_hint": str(prop("PERFORMANCE_HINT")), "streams": prop("NUM_STREAMS"),
                "model_cache": self._cache,
                "inference_precision_hint": hint_name, "inference_precision": actual,
                "runtime_precisions": layers, "version": ov.__version__}


def _compile_cached(core: Any, version: str, path: Path, device: str, config: dict[str, Any],
                    cache: bool | str | None, files: list[dict[str, Any]] | None) -> tuple[Any, str]:
    """The compiled model, imported from a verified cache entry or compiled from ``path``
    (and cached); plus the cache state for :meth:`OpenVINOBackend.info`."""
    folder, state = C.model_cache_dir(path, cache, files)
    if folder is None:
        return _compile(core, path, device, config), state
    name = C.entry_name(device=device, config=config, openvino=version)
    data, note = C.read_entry(folder, name)
    if data is not None:
        try:
            return core.import_model(data, device, config), f"{state} (imported, sha256 verified)"
        except RuntimeError as e:  # verified bytes this OpenVINO cannot import: compile again
            note = f"rebuilt: OpenVINO could not import the cached blob ({str(e).splitlines()[0][:120]})"
    compiled = _compile(core, path, device, config)
    try:
        blob = compiled.export_model()  # io.BytesIO (2025+) or bytes (2024)
        written = C.write_entry(folder, name, blob.getvalue() if hasattr(blob, "getvalue") else bytes(blob),
                                {"device": device, "openvino": version, "config": {k: str(v) for k, v in config.items()}})
    except RuntimeError as e:  # a device plugin that cannot export: runs uncached
        written = f"not cached: {device} cannot export a compiled model ({str(e).splitlines()[0][:120]})"
    return compiled, f"{state} ({note}; {written})" if note != "miss" else f"{state} ({written})"


def _compile(core: Any, path: Path, device: str, config: dict[str, Any]) -> Any:
    try:
        return core.compile_model(str(path), device, config)
    except RuntimeError as e:
        raise ArtifactError(f"{path}: OpenVINO cannot read it ({str(e).splitlines()[0]})") from e
