"""This machine's peak multiply-accumulate rate per precision (the limit a row is held to).

One large 3x3 convolution (256 -> 256 channels on a 64x64 map: 2.42 GMACs) is compiled
with OpenVINO on the CPU three ways: f32 (``INFERENCE_PRECISION_HINT=f32``), bf16 (only
when the CPU reports BF16 in ``OPTIMIZATION_CAPABILITIES``: AVX512-BF16 or AMX) and int8
(FakeQuantize on input and weights, which OpenVINO's CPU plugin runs as a u8 x i8
convolution: VNNI / AMX-INT8 when present, else AVX2/AVX-512 ``vpmaddubsw``).  Each is
timed for ``calls`` calls after one warm-up; GMAC/s = MACs / median seconds.  Without
OpenVINO, fp32 falls back to a numpy 2048^2 matmul.  The whole probe takes 2-3 s on two
cores, so it runs once per bench run, on the same load as the rows it is compared with.

Example::

    >>> peaks = measure(threads=2)                                     # doctest: +SKIP
    >>> peaks["int8"]["gmacs_per_s"] > peaks["fp32"]["gmacs_per_s"]    # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from typing import Any, Callable

import numpy as np

C, HW, K = 256, 64, 3
CONV_MACS = C * C * HW * HW * K * K  # stride 1, same padding


def _median_s(call: Callable[[], Any], calls: int) -> float:
    call()
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def _ov_conv(precision: str, threads: int | None) -> tuple[Callable[[], Any], str]:
    import openvino as ov
    import openvino.opset13 as ops

    rng = np.random.default_rng(0)
    x = ops.parameter([1, C, HW, HW], np.float32, name="x")
    w = rng.uniform(-0.1, 0.1, (C, C, K, K)).astype(np.float32)
    src, wt = x, ops.constant(w)
    if precision == "int8":
        src = ops.fake_quantize(x, 0.0, 4.0, 0.0, 4.0, 256)
        wt = ops.fake_quantize(wt, -0.1, 0.1, -0.1, 0.1, 255)
    conv = ops.convolution(src, wt, [1, 1], [1, 1], [1, 1], [1, 1])
    model = ov.Model([conv], [x], "peak")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY",
                              "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = ov.Core().compile_model(model, "CPU", config)
    req = compiled.create_infer_request()
    data = rng.uniform(0, 4, (1, C, HW, HW)).astype(np.float32)
    ran = {str(op.get_rt_info()["runtimePrecision"].astype(str)) for op in compiled.get_runtime_model().get_ordered_ops()
           if "layerType" in op.get_rt_info() and op.get_rt_info()["layerType"].astype(str) == "Convolution"}
    return (lambda: req.infer({0: data})), f"openvino {ov.__version__} conv3x3 {C}->{C} @{HW}x{HW} ran {','.join(sorted(ran))}"


def cpu_has_bf16() -> bool:
    """OpenVINO's CPU plugin reports bf16 support (AVX512-BF16 or AMX)."""
    if importlib.util.find_spec("openvino") is None:
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _numpy_fp32(calls: int) -> dict[str, Any]:
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    s = _median_s(lambda: a @ a, calls)
    return {"gmacs_per_s": n ** 3 / s / 1e9, "how": f"numpy {np.__version__} {n}x{n} fp32 matmul"}


def measure(threads: int | None = None, calls: int = 5) -> dict[str, dict[str, Any]]:
    """``{precision: {"gmacs_per_s", "how"} | {"skipped": why}}`` for fp32, bf16, int8."""
    out: dict[str, dict[str, Any]] = {}
    if importlib.util.find_spec("openvino") is None:
        out["fp32"] = _numpy_fp32(calls)
        out["bf16"] = out["int8"] = {"skipped": "openvino not installed"}
        return out
    for precision in ("fp32", "bf16", "int8"):
        if precision == "bf16" and not cpu_has_bf16():
            out[precision] = {"skipped": "this CPU has no bf16 (no AVX512-BF16 / AMX)"}
            continue
        call, how = _ov_conv(precision, threads)
        out[precision] = {"gmacs_per_s": CONV_MACS / _median_s(call, calls) / 1e9, "how": how}
    return out


def peak_for(peaks: dict[str, dict[str, Any]], ran_as: str | None) -> tuple[str, float | None]:
    """The peak a row is held to: by the precision it really ran in (``u8``/``i8``/``int8``
    -> int8, ``bf16`` -> bf16, anything else -> fp32)."""
    p = str(ran_as or "fp32").lower()
    key = "int8" if p in ("int8", "u8", "i8") else "bf16" if p == "bf16" else "fp32"
    return key, peaks.get(key, {}).get("gmacs_per_s")
