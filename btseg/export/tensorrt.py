"""ONNX -> TensorRT engine, one code path for TensorRT 10 and 11.

* **Strongly typed** networks (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, present in
  10.0 and later; TensorRT 11 has no other kind): the ONNX graph's own types decide the
  precision, no ``BuilderFlag.FP16``/``INT8`` (gone in 11).  FP32 from the FP32 ONNX, FP16
  from the FP16 ONNX with FP32 I/O (:func:`btseg.export.onnx.to_fp16`), INT8 from the
  TensorRT Q/DQ ONNX (:func:`btseg.export.quantize.quantize_onnx_tensorrt`: no INT32 bias
  DequantizeLinear, no Q/DQ on ``logits``).  The precision recorded is the one read from
  the graph (:func:`btseg.export.onnx.onnx_precision`), never just the label asked for.
* Dynamic batch: one optimisation profile, batch 1 (min/opt) .. ``MAX_BATCH``.
* Timing cache (``tensorrt.timing.cache`` next to the package): every return value is
  checked; a cache TensorRT cannot read or rejects is dropped and the build goes on with a
  fresh one; a build that fails with a reused cache is retried clean; ``extra.timing_cache``
  records what really happened.
* Every TensorRT failure (an exception from the bindings, a None where an object was
  expected) is a typed btseg error carrying the TensorRT log's last error lines.

An engine is tied to the GPU model and the TensorRT version that built it; both are
recorded in the manifest's ``extra``.  Build on the board itself (Jetson) with
``--from-onnx``.  ``tensorrt`` is imported only inside these functions; without it, without
``cuda-bindings`` or without a CUDA device, :func:`probe` names the reason before any work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import time
from pathlib import Path
from typing import Any

from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError
from btseg.export.tensorrt_cache import TIMING_CACHE, TimingCache  # noqa: F401 (TIMING_CACHE re-exported)
from btseg.io import atomic_write

MAX_BATCH = 8
TENSORRT_INT8 = "int8-tensorrt"  # the Q/DQ ONNX built with the TensorRT recipe (quantize.TENSORRT_QDQ)
INSTALL = "pip install 'btseg[tensorrt]' (CUDA 13, driver >= 580) or 'btseg[tensorrt-cu12]'; JetPack 6 on a Jetson"


def cuda_devices() -> list[dict[str, Any]]:
    """GPUs the CUDA driver sees (name, compute capability, driver's CUDA version).

    Uses the driver API (``libcuda``) through ctypes, so it needs no CUDA Python package;
    an empty list when there is no driver or no device.
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


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package (``cuda``) is missing
        return False


def probe(precision: str | None = None) -> str | None:
    """None when an engine (of any precision) can be built and verified here, else the
    reason (the ``tensorrt`` target's probe).

    Checks, in order: ``tensorrt`` importable, ``cuda-bindings`` (``cuda.bindings.runtime``,
    which the runtime backend and the verification use) importable, a CUDA device seen by
    the driver, so a build never runs only for its verification to fail.
    """
    if not _installed("tensorrt"):
        return "tensorrt not installed"
    if not _installed("cuda.bindings.runtime"):
        return "cuda-bindings (NVIDIA cuda-python) not installed"
    if not cuda_devices():
        return "no CUDA device"
    return None


def onnx_precision(path: str | Path) -> str:
    """The precision a strongly typed engine built from this ONNX has: ``int8`` when the
    graph holds Q/DQ nodes, ``fp16`` when it computes in float16, else ``fp32``.

    Raises:
        ArtifactError: the file is not a readable ONNX model.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise ArtifactError(f"{path}: not a readable ONNX model ({e})") from e
    ops = {n.op_type for n in model.graph.node}
    if ops & {"QuantizeLinear", "DequantizeLinear"}:
        return "int8"
    f16 = onnx.TensorProto.FLOAT16
    if any(i.data_type == f16 for i in model.graph.initializer) or any(
            n.op_type == "Cast" and any(a.name == "to" and a.i == f16 for a in n.attribute) for n in model.graph.node):
        return "fp16"
    return "fp32"


def input_shape(path: str | Path) -> list[int | str]:
    """The first graph input's dims (an int, or the symbolic name of a dynamic axis)."""
    import onnx

    dims = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]





def check_from_onnx(path: Path, precisions: list[str], dynamic_batch: bool, size: tuple[int, int],
                    can_calibrate: bool = False) -> Path:
    """A ``--from-onnx`` file must build what each job's label says, before any build:
    a Q/DQ graph is int8 (never labelled fp32/fp16), a float16 graph is fp16, an int8
    graph must follow TensorRT's Q/DQ rules (an FP32 graph plus calibration images is
    quantized with the TensorRT recipe on this machine), and its input must fit
    ``--dynamic-batch`` and the input size."""
    import onnx

    from btseg.export.quantize import tensorrt_qdq_problems

    if not path.is_file():
        raise ArtifactError(f"--from-onnx {path}: file not found")
    found = onnx_precision(path)  # ArtifactError when unreadable
    for precision in precisions:
        if precision == "int8" and found != "int8" and not (found == "fp32" and can_calibrate):
            raise ConfigError(f"--from-onnx {path}: tensorrt/int8 needs a TensorRT Q/DQ ONNX, or an FP32 ONNX "
                              "and --calib-data (quantized here with the TensorRT recipe)")
        if found == "int8" and precision != "int8":
            raise ConfigError(f"--from-onnx {path}: the graph holds Q/DQ nodes, so a TensorRT engine built "
                              f"from it is int8, not {precision}: use --precision int8")
        if found == "fp16" and precision == "fp32":
            raise ConfigError(f"--from-onnx {path}: the graph computes in float16; use --precision fp16")
    if found == "int8":
        problems = tensorrt_qdq_problems(onnx.load(str(path), load_external_data=False))
        if problems:
            raise ConfigError(f"--from-onnx {path}: TensorRT cannot build this Q/DQ graph: "
                              f"{'; '.join(problems[:2])} (re-export with --target tensorrt --precision int8)")
    dims = input_shape(path)
    if len(dims) != 4:
        raise ConfigError(f"--from-onnx {path}: input has shape {dims}, expected N C H W")
    if dynamic_batch and isinstance(dims[0], int) and dims[0] > 0:
        raise ConfigError(f"--from-onnx {path}: --dynamic-batch, but the file's batch axis is static "
                          f"({dims[0]}); export it with --dynamic-batch or drop the option")
    if all(isinstance(d, int) and d > 0 for d in dims[2:]) and tuple(dims[2:]) != tuple(size):
        raise ConfigError(f"--from-onnx {path}: input is {dims[2]}x{dims[3]}, the package's input size "
                          f"is {size[0]}x{size[1]} (--input-size)")
    return path


def capabilities(trt: Any) -> dict[str, bool]:
    """What these bindings offer, probed (never read from a version string)."""
    return {"strongly_typed": hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
            "weak_typing_flags": hasattr(trt.BuilderFlag, "FP16")}  # FP16/INT8 flags: TensorRT 10 only


def require_tensorrt() -> Any:
    """Import tensorrt or raise BackendUnavailableError with what to install."""
    reason = probe()
    if reason is not None:
        raise BackendUnavailableError(f"tensorrt target: {reason}; building an engine needs an NVIDIA GPU, "
                                      f"TensorRT >= 10 and cuda-bindings ({INSTALL})")
    import tensorrt as trt

    if not capabilities(trt)["strongly_typed"]:
        raise BackendUnavailableError(f"tensorrt {trt.__version__} has no strongly typed networks; "
                                      "btseg needs TensorRT >= 10")
    return trt


def build_engine(onnx_path: Path, engine_path: Path, precision: str, input_size: tuple[int, int],
                 dynamic_batch: bool = False, workspace_gib: float | None = None,
                 timing_cache: Path | None = None) -> dict[str, Any]:
    """Build and serialize an engine from ``onnx_path`` (see the module docstring).

    Returns facts for the manifest's ``extra``: TensorRT version, GPU, strongly typed,
    profile, what happened to the timing cache, build seconds.

    Raises:
        BackendUnavailableError: no TensorRT / cuda-bindings / GPU, or the builder cannot start.
        ArtifactError: the graph's precision is not ``precision``, the parser rejects the
            ONNX, or the build fails (with the TensorRT log's error lines).
    """
    trt = require_tensorrt()
    facts = build(trt, Path(onnx_path), Path(engine_path), precision, input_size, dynamic_batch,
                  workspace_gib, timing_cache)
    gpu = cuda_devices()[0]
    return {**facts, "cuda_driver": gpu["cuda_driver"], "gpu": gpu["name"],
            "compute_capability": gpu["compute_capability"]}


def build(trt: Any, onnx_path: Path, engine_path: Path, precision: str, input_size: tuple[int, int],
          dynamic_batch: bool = False, workspace_gib: float | None = None,
          timing_cache: Path | None = None) -> dict[str, Any]:
    """The build itself, on an imported ``trt`` module (no device query: testable on the
    real bindings over a stub library up to the first call that needs TensorRT)."""
    from btseg.runtime.tensorrt_backend import expect, make_logger, trt_guard

    found = onnx_precision(onnx_path)
    if found != precision:
        raise ArtifactError(f"{onnx_path}: the graph is {found} (read from its nodes and initializers); "
                            f"a strongly typed engine from it would be {found}, not {precision}")
    logger = make_logger(trt)
    with trt_guard("TensorRT builder", logger, BackendUnavailableError):
        builder = expect(trt.Builder(logger), "creating the TensorRT builder", logger, BackendUnavailableError)
    with trt_guard(f"{onnx_path}: TensorRT network", logger):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = expect(builder.create_network(flags), "creating a strongly typed network", logger)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ArtifactError(f"{onnx_path}: TensorRT cannot parse this ONNX: {errors}{logger.tail()}")
        profile = _profile(network, input_size, dynamic_batch, onnx_path)
    tcache = TimingCache(timing_cache)
    t0 = time.perf_counter()
    serialized = _build_once(trt, builder, network, profile, workspace_gib, tcache, logger, onnx_path)
    if serialized is None and tcache.reused:
        tcache.note("build failed with the reused cache; rebuilt with a fresh one")
        tcache.skip_file = True
        serialized = _build_once(trt, builder, network, profile, workspace_gib, tcache, logger, onnx_path)
    serialized = expect(serialized, f"{onnx_path}: building the {precision} engine", logger)
    with atomic_write(engine_path, "wb") as f:
        f.write(memoryview(serialized))
    return {"tensorrt": trt.__version__, "strongly_typed": True, "network_precision": found,
            "builder_flags": [], "capabilities": capabilities(trt), "workspace_gib": workspace_gib,
            "profile": profile, "timing_cache": tcache.record(), "build_seconds": round(time.perf_counter() - t0, 3),
            "warnings": list(logger.warnings)[-5:],
            "portable": "engine runs only on this GPU model with this TensorRT version"}


def _profile(network: Any, input_size: tuple[int, int], dynamic_batch: bool, onnx_path: Path) -> dict | None:
    """The optimisation profile's shapes, or None for a static-batch network."""
    inp = network.get_input(0)
    shape = tuple(inp.shape)
    h, w = input_size
    if dynamic_batch and shape[0] != -1:
        raise ArtifactError(f"{onnx_path}: --dynamic-batch, but the ONNX input {inp.name!r} has a static batch "
                            f"{shape}; export it with a dynamic batch axis")
    if tuple(shape[2:]) != (h, w):
        raise ArtifactError(f"{onnx_path}: input {inp.name!r} is {shape}, expected H W = {h} {w}")
    if shape[0] != -1:
        return None
    return {"input": inp.name, "min": [1, shape[1], h, w], "opt": [1, shape[1], h, w],
            "max": [MAX_BATCH, shape[1], h, w]}


def _build_once(trt: Any, builder: Any, network: Any, profile: dict | None, workspace_gib: float | None,
                tcache: TimingCache, logger: Any, onnx_path: Path) -> Any:
    """A fresh builder config (profile, workspace, timing cache) and one build; None on failure."""
    from btseg.runtime.tensorrt_backend import expect, trt_guard

    with trt_guard(f"{onnx_path}: TensorRT build", logger):
        config = expect(builder.create_builder_config(), "creating the builder config", logger)
        if workspace_gib:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(float(workspace_gib) * (1 << 30)))
        if profile is not None:
            opt_profile = builder.create_optimization_profile()
            opt_profile.set_shape(profile["input"], profile["min"], profile["opt"], profile["max"])
            if config.add_optimization_profile(opt_profile) < 0:
                raise ArtifactError(f"{onnx_path}: TensorRT rejected the profile {profile}{logger.tail()}")
        tcache.attach(config)
        serialized = builder.build_serialized_network(network, config)
        if serialized is not None:
            tcache.save(config)
        return serialized


def build_artifact(b: Any, job: Any) -> Any:
    """The ``tensorrt`` target's builder: a strongly typed engine from the ONNX whose types
    are the engine's precision (the TensorRT Q/DQ recipe for INT8)."""
    from btseg.export import onnx as O
    from btseg.export.job import Built

    p = b.plan
    src, info = b.onnx_file({"int8": TENSORRT_INT8}.get(job.precision, job.precision))
    name = f"{p.src.config.role or 'model'}-{job.precision}.engine"
    engine = b.staging / name
    extra = build_engine(src, engine, job.precision, p.spec.size, p.dynamic_batch, p.workspace_gib,
                         Path(p.dest.root) / TIMING_CACHE)
    ins, outs = O.io_signature(src)
    extra.update({"onnx": {k: v for k, v in info.items() if k != "calibration"}, "dynamic_batch": p.dynamic_batch,
                  **({"calibration": info["calibration"]} if "calibration" in info else {})})
    return Built(engine, engine, name, name, O.opset_of(src), ins, outs, extra)

