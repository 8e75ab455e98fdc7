"""ONNX Runtime backend with explicit execution providers.

``device`` picks the providers (never ORT's implicit default list):

=====================  ===============================================================
``cpu``                CPUExecutionProvider
``cuda`` / ``cuda:N``  CUDAExecutionProvider(device_id=N), then CPU
``tensorrt[:N]``       TensorrtExecutionProvider, CUDAExecutionProvider, then CPU
``openvino[:DEV]``     OpenVINOExecutionProvider(device_type=DEV, default CPU), then CPU
=====================  ===============================================================

A provider missing from this onnxruntime build raises :class:`BackendUnavailableError`
naming the wheel that has it.  :meth:`info` reports the providers the session really uses.

Thread safety: ``InferenceSession.run`` is thread-safe (documented by ONNX Runtime), so
one session serves every thread.  ``threads`` sets ``intra_op_num_threads`` (inter-op 1,
sequential execution: a single small graph gains nothing from inter-op parallelism).

Throughput: ``streams=N`` opens N sessions that split ``threads`` between them
(``intra_op_num_threads = max(1, threads // N)``); each calling thread is pinned to one
session, and :meth:`infer_many` keeps N batches in flight on N worker threads.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError
from btseg.runtime.backend import require

_WHEEL = {"CUDAExecutionProvider": "onnxruntime-gpu", "TensorrtExecutionProvider": "onnxruntime-gpu",
          "OpenVINOExecutionProvider": "onnxruntime-openvino"}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


def providers_for(device: str) -> list[tuple[str, dict[str, Any]]]:
    """Map a btseg device string to an explicit ORT provider list (see module docstring)."""
    kind, _, arg = device.partition(":")
    cpu = ("CPUExecutionProvider", {})
    if kind == "cpu":
        return [cpu]
    if kind == "cuda":
        return [("CUDAExecutionProvider", {"device_id": int(arg or 0)}), cpu]
    if kind == "tensorrt":
        dev = {"device_id": int(arg or 0)}
        return [("TensorrtExecutionProvider", dev), ("CUDAExecutionProvider", dev), cpu]
    if kind == "openvino":
        return [("OpenVINOExecutionProvider", {"device_type": arg.upper() or "CPU"}), cpu]
    raise ConfigError(f"onnxruntime: device {device!r}; expected cpu, cuda[:N], tensorrt[:N] or openvino[:DEVICE]")


def graph_precision(path: Path) -> str | None:
    """What the graph computes in: ``int8`` (Q/DQ nodes), ``fp16`` (FP16 weights behind FP32
    I/O, as export writes it) or ``fp32``; None when the ``onnx`` package is absent.

    The input dtype alone says fp32 for an FP16 graph with FP32 I/O, which is misleading.
    """
    try:
        import onnx
    except ImportError:
        return None
    graph = onnx.load(str(path), load_external_data=False).graph
    if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer):
        return "fp16"
    return "fp32"


class OnnxRuntimeBackend:
    """One ``onnxruntime.InferenceSession`` over an ONNX artifact (FP32, FP16 or INT8 QDQ)."""

    name = "onnxruntime"

    def __init__(self, session: Any, artifact: Path, device: str, threads: int | None, opt_level: str,
                 extra_sessions: list[Any] | None = None) -> None:
        self._session = session
        self._sessions = [session, *(extra_sessions or [])]
        self._local = threading.local()
        self._next = itertools.count()
        self._artifact = artifact
        self._device = device
        self._threads = threads
        self._opt_level = opt_level
        inp = session.get_inputs()[0]
        self._input = inp.name
        self._input_type = np.float16 if "float16" in inp.type else np.float32
        self._output = session.get_outputs()[0].name
        batch_dim = inp.shape[0] if inp.shape else None
        self._static_batch = batch_dim if isinstance(batch_dim, int) else None
        self._precision = graph_precision(artifact) or ("fp16" if self._input_type == np.float16 else "fp32")

    @classmethod
    def load(cls, artifact: Path, device: str = "cpu", threads: int | None = None,
             graph_optimization: str = "all", streams: int | None = None, **options: Any) -> "OnnxRuntimeBackend":
        """Create the session.

        Args:
            artifact: the ``.onnx`` file.
            device: see the module docstring.
            threads: intra-op threads (None: ORT's default, one per physical core).
            graph_optimization: ``disable|basic|extended|all``.
            streams: N > 1 opens N sessions splitting ``threads`` (see the module docstring).
        """
        ort = require("onnxruntime", "onnxruntime", "onnxruntime")
        if graph_optimization not in _OPT_LEVELS:
            raise ConfigError(f"graph_optimization {graph_optimization!r}: expected one of {_OPT_LEVELS}")
        providers = providers_for(device)
        available = set(ort.get_available_providers())
        for name, _ in providers:
            if name not in available:
                raise BackendUnavailableError(
                    f"onnxruntime {ort.__version__} has no {name} for device {device!r} "
                    f"(available: {', '.join(sorted(available))}); pip install {_WHEEL.get(name, 'onnxruntime')}")
        if streams is not None and int(streams) < 1:
            raise ConfigError(f"onnxruntime: streams {streams}: expected >= 1")
        n = int(streams or 1)
        if n > 1:
            threads = max(1, int(threads or os.cpu_count() or 1) // n)
        so = ort.SessionOptions()
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[graph_optimization]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        if threads:
            so.intra_op_num_threads = int(threads)
        so.log_severity_level = 3
        path = Path(artifact)
        if not path.is_file():
            raise ArtifactError(f"{path}: ONNX artifact not found")
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        bad_model = (ort_errors.Fail, ort_errors.InvalidGraph, ort_errors.InvalidProtobuf,
                     ort_errors.InvalidArgument, ort_errors.NoSuchFile)
        try:
            sessions = [ort.InferenceSession(str(path), sess_options=so, providers=providers) for _ in range(n)]
        except bad_model as e:
            raise ArtifactError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0]})") from e
        return cls(sessions[0], path, device, threads, graph_optimization, sessions[1:])

    def _mine(self) -> Any:
        """This thread's session (threads take the sessions round-robin)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = self._sessions[next(self._next) % len(self._sessions)]
        return s

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """NCHW float32 -> NCHW float32 logits (a static batch-1 model runs item by item)."""
        x = np.ascontiguousarray(batch, dtype=self._input_type)
        if self._static_batch == 1 and len(x) > 1:
            return np.concatenate([self.infer(x[i:i + 1]) for i in range(len(x))])
        (y,) = self._mine().run([self._output], {self._input: x})
        return np.asarray(y, dtype=np.float32)

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Logits of each batch, in order, one worker thread per session (at most twice
        as many batches in flight as sessions)."""
        n = len(self._sessions)
        with ThreadPoolExecutor(n, thread_name_prefix="btseg-ort") as pool:
            pending: list[Any] = []
            for x in batches:
                pending.append(pool.submit(self.infer, x))
                if len(pending) >= 2 * n:
                    yield pending.pop(0).result()
            for f in pending:
                yield f.result()

    def info(self) -> dict[str, Any]:
        import onnxruntime as ort

        used = self._session.get_providers()
        return {"backend": self.name, "artifact": str(self._artifact), "device": self._device,
                "providers": used, "threads": self._threads, "inter_op_threads": 1, "streams": len(self._sessions),
                "graph_optimization": self._opt_level, "inference_precision": self._precision,
                "version": ort.__version__}
