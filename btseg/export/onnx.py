"""PyTorch -> ONNX (FP32, FP16): export, fold, simplify, check, stamp metadata.

The model is exported in eval mode, so BatchNorm folds into the preceding convolutions
(the exporter's constant folding; onnxslim folds any Conv+BN left), and the result is
refused if a ``BatchNormalization`` node survives.  The graph is simplified with onnxslim
and must pass ``onnx.checker.check_model(full_check=True)``.  Input ``image`` (N,1,H,W),
output ``logits`` (N,1,H,W); N is static (1) unless ``dynamic_batch``.

Like Ultralytics, every ONNX file carries its own metadata (``metadata_props``): the
preprocessing spec as JSON, the threshold, the post-processing spec, the architecture and
the btseg version, so an ONNX file alone is enough to run the model correctly.

Example::

    >>> info = export_onnx(model, (128, 128), "work/fp32.onnx", metadata)   # doctest: +SKIP
    >>> info["exporter"], info["opset"]                                        # doctest: +SKIP
    ('dynamo', 18)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any

from btseg.errors import ArtifactError, BackendUnavailableError

log = logging.getLogger("btseg.export")

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
_DTYPES = {1: "float32", 10: "float16", 3: "int8", 2: "uint8", 7: "int64", 6: "int32"}


def _export(model: Any, dummy: Any, path: Path, opset: int, dynamic_batch: bool, dynamo: bool) -> None:
    import torch

    kw: dict[str, Any] = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                              dynamo=dynamo)
    if dynamo:
        kw["verbose"] = False
        if dynamic_batch:
            kw["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    else:
        kw["do_constant_folding"] = True
        kw["training"] = torch.onnx.TrainingMode.EVAL
        if dynamic_batch:
            kw["dynamic_axes"] = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    # the exporters print progress and deprecation chatter; keep the CLI output readable
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), **kw)


def torch_to_onnx(model: Any, input_size: tuple[int, int], path: Path, opset: int,
                  dynamic_batch: bool = False) -> str:
    """Run ``torch.onnx.export``; the dynamo exporter first, TorchScript if it fails.

    Returns ``"dynamo"`` or ``"torchscript"``: which exporter produced the file.
    """
    import torch

    model = model.eval()
    dummy = torch.zeros(1, 1, *input_size)
    with torch.no_grad():
        try:
            _export(model, dummy, path, opset, dynamic_batch, dynamo=True)
            return "dynamo"
        except ImportError as e:  # onnxscript missing: the dynamo exporter cannot run at all
            log.warning("dynamo ONNX exporter unavailable (%s); using the TorchScript exporter", e)
        except (torch.onnx.OnnxExporterError, RuntimeError, TypeError, ValueError) as e:
            log.warning("dynamo ONNX exporter failed (%s); using the TorchScript exporter",
                        str(e).splitlines()[0] if str(e) else type(e).__name__)
        _export(model, dummy, path, opset, dynamic_batch, dynamo=False)
        return "torchscript"


def simplify(model_proto: Any) -> Any:
    """onnxslim: constant folding, Conv+BN fusion, dead-node elimination."""
    import onnxslim

    with contextlib.redirect_stdout(io.StringIO()):
        return onnxslim.slim(model_proto)


def op_types(model_proto: Any) -> set[str]:
    return {n.op_type for n in model_proto.graph.node}


def set_metadata(model_proto: Any, metadata: dict[str, Any]) -> None:
    """Replace ``metadata_props`` with ``metadata`` (non-strings stored as JSON)."""
    del model_proto.metadata_props[:]
    for k, v in metadata.items():
        entry = model_proto.metadata_props.add()
        entry.key, entry.value = str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings."""
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def check(model_proto: Any, where: str | Path) -> None:
    """``onnx.checker.check_model(full_check=True)``; ArtifactError naming the file on failure."""
    import onnx

    try:
        onnx.checker.check_model(model_proto, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise ArtifactError(f"{where}: ONNX checker failed: {str(e).splitlines()[0]}") from e


def io_signature(path_or_proto: Any) -> tuple[list[dict], list[dict]]:
    """(inputs, outputs) as ``[{name, shape, dtype}]``; symbolic dims kept as their names."""
    import onnx

    m = onnx.load(str(path_or_proto), load_external_data=False) if isinstance(path_or_proto, (str, Path)) \
        else path_or_proto

    def one(v: Any) -> dict:
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return {"name": v.name, "shape": shape, "dtype": _DTYPES.get(t.elem_type, str(t.elem_type))}

    inits = {i.name for i in m.graph.initializer}
    return [one(v) for v in m.graph.input if v.name not in inits], [one(v) for v in m.graph.output]


def finalize(model_proto: Any, path: Path, metadata: dict[str, Any]) -> None:
    """Stamp metadata, run the full checker, save to ``path``."""
    import onnx

    set_metadata(model_proto, metadata)
    check(model_proto, path)
    onnx.save(model_proto, str(path))


def export_onnx(model: Any, input_size: tuple[int, int], path: Path, metadata: dict[str, Any],
                opset: int, dynamic_batch: bool = False) -> dict[str, Any]:
    """Export ``model`` to an FP32 ONNX file at ``path`` (see the module docstring).

    Returns ``{"exporter", "opset", "nodes_before", "nodes_after", "op_types"}``.

    Raises:
        ArtifactError: a BatchNormalization node survived, or the checker failed.
    """
    import onnx

    path = Path(path)
    raw = path.with_name(path.stem + ".raw.onnx")
    exporter = torch_to_onnx(model, input_size, raw, opset, dynamic_batch)
    proto = onnx.load(str(raw))
    raw.unlink()
    before = len(proto.graph.node)
    proto = simplify(proto)
    ops = op_types(proto)
    if "BatchNormalization" in ops:
        raise ArtifactError(f"{path.name}: BatchNormalization survived folding; was the model in eval mode?")
    used = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if used != opset:  # the dynamo exporter keeps its default for an opset it cannot convert to
        raise ArtifactError(f"{path.name}: asked for ONNX opset {opset}, the exporter wrote {used}")
    finalize(proto, path, {**metadata, "exporter": f"torch.onnx ({exporter})"})
    return {"exporter": exporter, "opset": used, "nodes_before": before,
            "nodes_after": len(proto.graph.node), "op_types": sorted(ops)}


def to_fp16(src: Path, dst: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """FP32 ONNX -> FP16 weights and compute, FP32 ``image``/``logits`` (keep_io_types).

    Raises:
        BackendUnavailableError: onnxruntime.transformers.float16 is not importable.
    """
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as e:
        raise BackendUnavailableError(
            f"onnx/fp16 needs onnxruntime.transformers.float16 (ships with onnxruntime >= 1.16): {e}") from e
    proto = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(proto, keep_io_types=True)
    half = simplify(half)  # the converter appends its input casts last; onnxslim re-sorts the graph
    finalize(half, Path(dst), metadata)
    n16 = sum(1 for i in half.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
    return {"converter": "onnxruntime.transformers.float16", "fp16_initializers": n16}


def has_qdq(path: str | Path) -> bool:
    """True when the ONNX graph holds explicit QuantizeLinear/DequantizeLinear nodes."""
    import onnx

    ops = op_types(onnx.load(str(path), load_external_data=False))
    return {"QuantizeLinear", "DequantizeLinear"} <= ops


def opset_of(path: str | Path) -> int | None:
    """The default-domain opset an ONNX file declares."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), None)


def probe(precision: str) -> str | None:
    """Why this machine cannot build an ONNX artifact of ``precision`` (the ``onnx`` target's probe)."""
    import importlib.util

    if precision == "fp16" and importlib.util.find_spec("onnxruntime.transformers") is None:
        return "onnxruntime.transformers.float16 not importable"
    return None


def build_artifact(b: Any, job: Any) -> Any:
    """The ``onnx`` target's builder: the staged ONNX of ``job.precision`` (``b``: the pipeline's Builder)."""
    from btseg.export.job import Built

    path, info = b.onnx_file(job.precision)
    ins, outs = io_signature(path)
    name = f"{b.plan.src.config.role or 'model'}-{job.precision}.onnx"
    return Built(path, path, name, name, opset_of(path), ins, outs, {**info, "dynamic_batch": b.plan.dynamic_batch})

