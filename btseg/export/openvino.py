"""ONNX -> OpenVINO IR (FP32, FP16) and NNCF post-training INT8.

* FP32 / FP16: ``openvino.convert_model`` on the FP32 ONNX, then ``openvino.save_model``
  with an explicit ``compress_to_fp16`` (FP16 stores FP16 weights; OpenVINO decompresses
  them on CPU and runs natively in FP16 on GPU/NPU).
* INT8: ``nncf.quantize`` on the converted model with the same calibration images,
  preprocessed by the same spec as the ONNX Runtime INT8 path; ``minmax`` uses NNCF's
  MINMAX range estimator, ``percentile`` its MEAN_QUANTILE one (NNCF has no entropy/KL
  estimator, which :mod:`btseg.export.plan` refuses before any work).

Each IR lives in its own directory (``openvino-fp16/model.xml`` + ``model.bin``) written to
a temporary directory first and renamed into place by :func:`install_dir`, so a killed
export never leaves a half-written IR under the final name.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from btseg.runtime.backend import require

XML, BIN = "model.xml", "model.bin"


def _quiet_nncf() -> Any:
    nncf = require("nncf", "openvino", "openvino")
    nncf.set_log_level(logging.ERROR)
    return nncf


def _quantize(model: Any, inputs: list[np.ndarray], method: str) -> tuple[Any, dict[str, Any]]:
    nncf = _quiet_nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    estimators = {"minmax": ("MINMAX", RangeEstimatorParametersSet.MINMAX),
                  "percentile": ("MEAN_QUANTILE", RangeEstimatorParametersSet.MEAN_QUANTILE)}
    est_name, est = estimators[method]
    with contextlib.redirect_stdout(io.StringIO()):  # nncf's rich progress bars
        quantized = nncf.quantize(
            model, nncf.Dataset(inputs), preset=nncf.QuantizationPreset.PERFORMANCE,  # symmetric activations
            subset_size=len(inputs), target_device=nncf.TargetDevice.ANY,
            advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=est))
    return quantized, {"quantizer": "nncf.quantize", "nncf": nncf.__version__, "preset": "performance",
                       "range_estimator": est_name, "calib_method": method, "calib_images": len(inputs)}


def export_ir(onnx_path: Path, out_dir: Path, precision: str, inputs: list[np.ndarray] | None = None,
              method: str = "minmax") -> dict[str, Any]:
    """Convert the FP32 ONNX at ``onnx_path`` into an IR in ``out_dir`` (``model.xml/.bin``).

    Returns facts for the manifest's ``extra`` (compression, quantizer settings).
    """
    ov = require("openvino", "openvino", "openvino")
    model = ov.convert_model(str(onnx_path))
    extra: dict[str, Any] = {"converted_from": "onnx"}
    if precision == "int8":
        model, q = _quantize(model, inputs or [], method)
        extra.update(q)
    compress = precision == "fp16"
    out_dir.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out_dir / XML), compress_to_fp16=compress)
    extra["compress_to_fp16"] = compress
    return extra


def io_signature(xml: Path) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) of an IR as ``[{name, shape, dtype}]`` (``?`` for dynamic dims)."""
    ov = require("openvino", "openvino", "openvino")
    m = ov.Core().read_model(str(xml))

    def one(port: Any) -> dict:
        ps = port.get_partial_shape()
        shape = [d.get_length() if d.is_static else "batch" for d in ps]
        return {"name": port.get_any_name(), "shape": shape, "dtype": port.get_element_type().to_dtype().name}

    return [one(p) for p in m.inputs], [one(p) for p in m.outputs]


def install_dir(tmp: Path, final: Path) -> None:
    """Move the finished directory ``tmp`` onto ``final``, replacing an older one.

    Each step is a rename on one filesystem; the old directory is deleted only after
    the new one is in place.
    """
    final = Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def staging_dir(parent: Path, name: str) -> Path:
    """A hidden temporary directory next to where ``name`` will be installed."""
    return Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))


def probe(precision: str) -> str | None:
    """Why this machine cannot build an OpenVINO IR of ``precision`` (the ``openvino`` target's probe)."""
    import importlib.util

    for mod in ("openvino", "nncf") if precision == "int8" else ("openvino",):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} not installed"
    return None


def build_artifact(b: Any, job: Any) -> Any:
    """The ``openvino`` target's builder: an IR converted from the staged FP32 ONNX (NNCF for INT8)."""
    from btseg.export.job import Built

    p = b.plan
    fp32, info = b.onnx_file("fp32")
    out = staging_dir(b.staging, f"openvino-{job.precision}")
    inputs = p.calib_images.inputs(p.spec) if job.precision == "int8" else None
    extra = export_ir(fp32, out, job.precision, inputs, p.calib_method)
    if job.precision == "int8":
        extra["calibration"] = p.calib_images.describe()
    ins, outs = io_signature(out / XML)
    return Built(out / XML, out, f"openvino-{job.precision}", XML, info.get("opset"), ins, outs,
                 {**extra, "exporter": info.get("exporter"), "dynamic_batch": p.dynamic_batch})

