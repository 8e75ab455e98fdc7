"""ONNX -> TensorRT engine with the TensorRT >= 10 Python API.

* The network comes from the ONNX parser (explicit batch is the only mode in TRT 10).
* FP16: ``BuilderFlag.FP16``.  INT8: the Q/DQ ONNX graph from
  :mod:`btseg.export.quantize` carries the scales (explicit quantization, no calibrator);
  ``INT8`` and ``FP16`` flags let TensorRT pick kernels for the quantized and the
  remaining layers.
* Dynamic batch: one optimisation profile, batch 1 (min/opt) .. ``MAX_BATCH``.
* A timing cache next to the package (``tensorrt.timing.cache``) is loaded before and
  saved after every build, so rebuilding FP16 after FP32 (or on the next run) reuses the
  tactic timings.
* ``--workspace GiB`` -> ``set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)``.

An engine is tied to the GPU model and the TensorRT version that built it; both are
recorded in the manifest's ``extra`` together with the CUDA driver version and the GPU's
compute capability.  Build on the board itself (Jetson) with ``--from-onnx``.

``tensorrt`` is imported only inside these functions; without it, or without a CUDA
device, :func:`probe` names the reason and :func:`require_tensorrt` raises
:class:`~btseg.errors.BackendUnavailableError` (CLI exit code 2): never a fake engine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import time
from pathlib import Path
from typing import Any

from btseg.errors import ArtifactError, BackendUnavailableError
from btseg.io import atomic_write

MAX_BATCH = 8
TIMING_CACHE = "tensorrt.timing.cache"


def cuda_devices() -> list[dict[str, Any]]:
    """GPUs the CUDA driver sees (name, compute capability, driver's CUDA version).

    Uses the driver API (``libcuda``) through ctypes, so it needs neither pycuda nor a
    CUDA-enabled torch; an empty list when there is no driver or no device.
    """
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    try:
        cu = ctypes.CDLL(name)
    except OSError:
        return []
    if cu.cuInit(0) != 0:
        return []
    count, drv = ctypes.c_int(0), ctypes.c_int(0)
    if cu.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    cu.cuDriverGetVersion(ctypes.byref(drv))
    out = []
    for i in range(count.value):
        dev, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        buf = ctypes.create_string_buffer(256)
        cu.cuDeviceGet(ctypes.byref(dev), i)
        cu.cuDeviceGetName(buf, 256, dev)
        cu.cuDeviceGetAttribute(ctypes.byref(major), 75, dev)  # COMPUTE_CAPABILITY_MAJOR
        cu.cuDeviceGetAttribute(ctypes.byref(minor), 76, dev)  # COMPUTE_CAPABILITY_MINOR
        out.append({"index": i, "name": buf.value.decode(errors="replace"),
                    "compute_capability": f"{major.value}.{minor.value}",
                    "cuda_driver": f"{drv.value // 1000}.{drv.value % 1000 // 10}"})
    return out


def probe() -> str | None:
    """None when an engine can be built here, else the reason (``tensorrt not installed``)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "tensorrt not installed"
    if not cuda_devices():
        return "no CUDA device"
    return None


def require_tensorrt() -> Any:
    """Import tensorrt (>= 10) or raise BackendUnavailableError with what to install."""
    reason = probe()
    if reason is not None:
        raise BackendUnavailableError(
            f"tensorrt target: {reason}; building an engine needs an NVIDIA GPU with TensorRT >= 10 "
            "(pip install 'btseg[tensorrt]', or JetPack 6 on a Jetson)")
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) < 10:
        raise BackendUnavailableError(f"tensorrt {trt.__version__} found; btseg needs TensorRT >= 10")
    return trt


def _parse(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> Any:
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtifactError(f"{onnx_path}: TensorRT cannot parse this ONNX: {errors}")
    return network


def _timing_cache(config: Any, path: Path) -> Any:
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return len(data) > 0


def build_engine(onnx_path: Path, engine_path: Path, precision: str, input_size: tuple[int, int],
                 dynamic_batch: bool = False, workspace_gib: float | None = None,
                 timing_cache: Path | None = None) -> dict[str, Any]:
    """Build and serialize an engine from ``onnx_path`` (FP32 ONNX, or Q/DQ ONNX for INT8).

    Returns facts for the manifest's ``extra``: TensorRT/CUDA versions, GPU, flags,
    profile, whether the timing cache was reused, build seconds.
    """
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = _parse(trt, builder, logger, Path(onnx_path))
    config = builder.create_builder_config()
    if workspace_gib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(float(workspace_gib) * (1 << 30)))
    flags = []
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
        flags.append("FP16")
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the graph's Q/DQ nodes
        flags.append("INT8")
    h, w = input_size
    profile = None
    inp = network.get_input(0)
    if dynamic_batch or inp.shape[0] == -1:
        profile = {"min": [1, 1, h, w], "opt": [1, 1, h, w], "max": [MAX_BATCH, 1, h, w]}
        p = builder.create_optimization_profile()
        p.set_shape(inp.name, profile["min"], profile["opt"], profile["max"])
        config.add_optimization_profile(p)
    reused = _timing_cache(config, timing_cache) if timing_cache else False
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(f"{onnx_path}: TensorRT failed to build a {precision} engine (see the log above)")
    with atomic_write(engine_path, "wb") as f:
        f.write(serialized)
    if timing_cache:
        with atomic_write(timing_cache, "wb") as f:
            f.write(config.get_timing_cache().serialize())
    gpu = cuda_devices()[0]
    return {"tensorrt": trt.__version__, "cuda_driver": gpu["cuda_driver"], "gpu": gpu["name"],
            "compute_capability": gpu["compute_capability"], "builder_flags": flags,
            "workspace_gib": workspace_gib, "profile": profile, "timing_cache": TIMING_CACHE if timing_cache else None,
            "timing_cache_reused": reused, "build_seconds": round(time.perf_counter() - t0, 3),
            "portable": "engine runs only on this GPU model with this TensorRT version"}
