"""Calibration images and ONNX Runtime static INT8 quantization (explicit Q/DQ).

Calibration images come from a dataset directory (BUSI, Dataset B or images/+masks/
folder, read with :func:`btseg.data.open_dataset`) or, failing a known layout, from any
folder of image files; every image goes through THE preprocessing
(:func:`btseg.preprocess.preprocess`), so INT8 ranges are measured on exactly what
the network sees on the cart.  Images are picked evenly spaced over the sorted set, so
every class of a BUSI-layout set is represented.

Each runtime gets its own INT8 recipe, recorded in the manifest (``extra.recipe``): TensorRT's
is :data:`TENSORRT_QDQ`; ONNX Runtime's CPU recipe (``ORT_CPU``): QDQ format, uint8 asymmetric
activations and int8 per-channel symmetric weights (U8S8), every operator quantised.  Why
(ORT 1.32 profiler, paper student at 256 px, 2 threads, see docs/bench.md): with int8
activations (S8S8, the old recipe) ORT fused only 27 of the 53 Conv into ``QLinearConv``;
the other 26 ran in float between 104 DequantizeLinear and 70 QuantizeLinear nodes plus 36
layout Transposes, so INT8 ran 1.27x *slower* than FP32.  With U8S8 every Conv becomes a
``QLinearConv`` (x86 MLAS kernels are u8 x s8: ``vpmaddubsw`` on AVX2, ``vpdpbusd`` on
VNNI), the Add/Mul/Sigmoid/Concat of the attention gates become QLinear ops, the graph
goes NHWC end to end with one Q at the input and one DQ at the output.  In that NHWC graph
ORT's uint8 nearest ``Resize`` is a per-element loop (16% of INT8 time), so the recipe first
spells each exact 2x upsample as a channels-last Reshape/Expand (:mod:`btseg.export.rewrite`,
bit-exact, recorded as ``graph_rewrites``).

Example::

    >>> calib = load_images("Dataset_BUSI_with_GT", 64)                      # doctest: +SKIP
    >>> quantize_onnx("fp32.onnx", "int8.onnx", calib.inputs(spec), "entropy", meta)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from btseg.preprocess import PreprocessSpec, preprocess
from btseg.errors import DataError
from btseg.export.rewrite import NEAREST2X


class FewImagesWarning(UserWarning):
    """Fewer calibration/verification images than asked: all of them are used."""


@dataclass
class ImageSet:
    """Images picked from a directory, with their masks when the layout has them."""

    root: str
    layout: str
    images: list[np.ndarray]
    masks: list[np.ndarray | None]
    ids: list[str]
    available: int
    requested: int
    indices: list[int] = field(default_factory=list)
    overlaps: bool = False  # verification images that were also calibration images
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) left out with skip_bad

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_masks(self) -> bool:
        return bool(self.masks) and all(m is not None for m in self.masks)

    def inputs(self, spec: PreprocessSpec) -> list[np.ndarray]:
        """Each image preprocessed to a 1xCxHxW float32 batch of one."""
        return [preprocess(im, spec)[None] for im in self.images]

    def describe(self) -> dict[str, Any]:
        """What the manifest records; ``skipped`` (file, reason) only when items were left out."""
        d = {"root": self.root, "layout": self.layout, "used": len(self), "requested": self.requested,
             "available": self.available, "with_masks": self.has_masks, "overlaps_calibration": self.overlaps}
        if self.skipped:
            d["skipped"] = [{"file": p, "reason": r} for p, r in self.skipped]
        return d


def _spread(n_total: int, n: int, exclude: Sequence[int] = ()) -> list[int]:
    """``n`` indices evenly spaced over ``range(n_total)``, avoiding ``exclude`` when possible."""
    pool = [i for i in range(n_total) if i not in set(exclude)]
    if len(pool) < n:
        pool = list(range(n_total))
    if n >= len(pool):
        return pool
    return [pool[int(i)] for i in np.linspace(0, len(pool) - 1, n).round()]


def _plain_images(root: Path) -> list[Path]:
    from btseg.data.dataset import IMAGE_EXTS, natural_key

    try:
        files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                 and "_mask" not in p.stem and not p.name.startswith(".")]
    except OSError as e:
        raise DataError(f"{root}: cannot list files ({e.strerror or e})") from e
    return sorted(files, key=lambda p: [*natural_key(p.parent), *natural_key(p)])


def load_images(root: str | Path, n: int, what: str = "calibration", exclude: Sequence[int] = (),
                skip_bad: bool = False) -> ImageSet:
    """Pick ``n`` images (and masks, when there are any) from ``root``.

    Fewer images than asked is a warning, not an error: all of them are used and the
    count is recorded by the caller.  Every file is checked first (the data loaders'
    rules): a bad one refuses the set with every bad item named, or with ``skip_bad``
    is left out, named once in a :class:`~btseg.data.SkippedFilesWarning` and in
    :attr:`ImageSet.skipped`.

    Raises:
        DataError: ``root`` is missing, unreadable, holds no images, or has bad items
            (without ``skip_bad``).
    """
    from btseg.data import detect_layout, open_dataset
    from btseg.data.dataset import Problems, load_image

    root = Path(root)
    if n < 1:
        raise DataError(f"{what} size {n}: expected >= 1")
    if not root.is_dir():
        raise DataError(f"{what} data {root}: not a directory")
    try:
        layout = detect_layout(root)
    except DataError:
        layout = "images"
    except OSError as e:
        raise DataError(f"{what} data {root}: cannot read ({e.strerror or e})") from e
    skipped: list[tuple[str, str]] = []
    if layout == "images":
        files = _plain_images(root)
        if not files:
            raise DataError(f"{what} data {root}: no images found (looked for *.png, *.jpg, *.bmp, *.tif)")
        problems, decoded = Problems(), {}
        for f in files:
            try:
                decoded[f] = load_image(f)
            except DataError as e:
                problems.add(f, str(e).replace(f"{f}: ", "", 1))
        skipped = problems.resolve(skip_bad, f"{what} data {root}")
        files = [f for f in files if f in decoded]
        if not files:
            raise DataError(f"{what} data {root}: every image is bad ({len(skipped)} skipped)")
        idx = _spread(len(files), n, exclude)
        images, masks, ids = [decoded[files[i]] for i in idx], [None] * len(idx), [str(files[i]) for i in idx]
        available = len(files)
    else:
        ds = open_dataset(root, layout, include_normal=True, skip_bad=skip_bad, verify=True)
        skipped = ds.skipped
        if len(ds) == 0:
            raise DataError(f"{what} data {root}: the {layout} layout holds no images")
        idx = _spread(len(ds), n, exclude)
        samples = [ds[i] for i in idx]
        images, masks, ids = [s.image for s in samples], [s.mask for s in samples], [s.id for s in samples]
        available = len(ds)
    if available < n:
        warnings.warn(f"{what} data {root}: asked for {n} images, only {available} available; using {available}",
                      FewImagesWarning, stacklevel=2)
    return ImageSet(str(root), layout, images, masks, ids, available, n, idx, skipped=skipped)


class ImageCalibrationReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over preprocessed images."""

    def __init__(self, inputs: list[np.ndarray], input_name: str = "image") -> None:
        self._inputs = inputs
        self._name = input_name
        self._it = iter(self._inputs)

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self) -> None:
        self._it = iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)


def _reader(inputs: list[np.ndarray]) -> Any:
    # subclass at call time so importing this module does not import onnxruntime.quantization
    from onnxruntime.quantization import CalibrationDataReader

    cls = type("CalibrationReader", (ImageCalibrationReader, CalibrationDataReader), {})
    return cls(inputs)


@dataclass(frozen=True)
class Recipe:
    """How ``quantize_static`` builds one runtime's INT8 graph (saved in the manifest).

    ``exclude_op_types`` names operators left in float (their nodes are excluded).
    """

    name: str
    format: str = "QDQ"  # or "QOperator"
    activation_type: str = "uint8"
    weight_type: str = "int8"
    per_channel: bool = True
    activation_symmetric: bool = False
    weight_symmetric: bool = True
    reduce_range: bool = False
    op_types_to_quantize: tuple[str, ...] | None = None  # None: every op the quantizer knows
    exclude_op_types: tuple[str, ...] = ()
    graph_rewrites: tuple[str, ...] = ()  # exact rewrites applied first (btseg.export.rewrite)

    def describe(self) -> dict[str, Any]:
        """The manifest's ``recipe`` entry."""
        return {"name": self.name, "format": self.format, "activation_type": self.activation_type,
                "weight_type": self.weight_type, "per_channel": self.per_channel,
                "activation_symmetric": self.activation_symmetric, "weight_symmetric": self.weight_symmetric,
                "reduce_range": self.reduce_range,
                "op_types_to_quantize": list(self.op_types_to_quantize) if self.op_types_to_quantize else "all",
                "exclude_op_types": list(self.exclude_op_types), "graph_rewrites": list(self.graph_rewrites)}


#: ONNX Runtime CPU EP: U8S8 QDQ, per-channel weights, 2x nearest upsampling spelt channels-last
#: (see the module docstring and :mod:`btseg.export.rewrite` for why).
ORT_CPU = Recipe("onnxruntime-cpu-u8s8-qdq", graph_rewrites=(NEAREST2X,))
#: One recipe per runtime; TensorRT's (symmetric S8S8, FP32 bias and output) is
#: :data:`TENSORRT_QDQ` below, built by :func:`quantize_onnx_tensorrt`.
RECIPES: dict[str, Recipe] = {"onnxruntime": ORT_CPU}


def _excluded(path: Path, op_types: Sequence[str]) -> list[str]:
    import onnx

    if not op_types:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in set(op_types)]


def _rewrite(path: Path, names: Sequence[str]) -> dict[str, int]:
    """Apply a recipe's exact graph rewrites to the ONNX file at ``path`` in place."""
    import onnx

    from btseg.export import rewrite

    if not names:
        return {}
    model = onnx.load(str(path))
    counts = rewrite.apply(model, list(names))
    if any(counts.values()):
        onnx.save(model, str(path))
    return counts


def quantize_onnx(src: Path, dst: Path, inputs: list[np.ndarray], method: str,
                  metadata: dict[str, Any], recipe: Recipe = ORT_CPU) -> dict[str, Any]:
    """FP32 ONNX -> INT8 ONNX calibrated on ``inputs`` with ``recipe`` (see the module docstring).

    Returns the quantization settings, for the manifest's ``extra`` (``recipe`` included).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from btseg.export.onnx import finalize

    if not inputs:
        raise DataError("INT8 calibration: no images")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    qtypes = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    src, dst = Path(src), Path(dst)
    pre = dst.with_name(dst.stem + ".pre.onnx")
    raw = dst.with_name(dst.stem + ".raw.onnx")
    extra_options = {"ActivationSymmetric": recipe.activation_symmetric, "WeightSymmetric": recipe.weight_symmetric}
    if method == "percentile":
        extra_options["CalibPercentile"] = 99.999
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # shape inference + ORT's basic graph optimisations make the quantizer's job exact
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        rewritten = _rewrite(pre, recipe.graph_rewrites)
        quantize_static(str(pre), str(raw), _reader(inputs), quant_format=QuantFormat[recipe.format],
                        per_channel=recipe.per_channel, reduce_range=recipe.reduce_range,
                        activation_type=qtypes[recipe.activation_type], weight_type=qtypes[recipe.weight_type],
                        op_types_to_quantize=list(recipe.op_types_to_quantize) if recipe.op_types_to_quantize
                        else None, nodes_to_exclude=_excluded(pre, recipe.exclude_op_types),
                        calibrate_method=methods[method], extra_options=extra_options)
    proto = onnx.load(str(raw))
    for p in (pre, raw):
        p.unlink(missing_ok=True)
    finalize(proto, dst, metadata)
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": recipe.format,
            "calib_method": method, "per_channel_weights": recipe.per_channel,
            "activation_symmetric": recipe.activation_symmetric, "weight_type": recipe.weight_type,
            "activation_type": recipe.activation_type, "calib_images": len(inputs), "recipe": recipe.describe(),
            "graph_rewrites": rewritten,
            **({"calib_percentile": extra_options["CalibPercentile"]} if method == "percentile" else {})}


# -- the TensorRT recipe -------------------------------------------------------------------
# TensorRT builds explicit-precision engines from Q/DQ graphs, with three demands that
# onnxruntime's defaults break: zero points must be 0 (symmetric activations and weights),
# a DequantizeLinear may only produce activation types (QuantizeBias=False: the Conv bias
# stays FP32, no INT32 bias DQ; onnx-tensorrt #850), and the graph output stays FP32
# (the node producing ``logits`` is not quantized).
TENSORRT_QDQ: dict[str, Any] = {
    "per_channel": True, "activation_type": "QInt8", "weight_type": "QInt8",
    "extra_options": {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False},
}


def _output_producers(model: Any) -> list[str]:
    outs = {o.name for o in model.graph.output}
    return [n.name for n in model.graph.node if outs & set(n.output)]


def quantize_onnx_tensorrt(src: Path, dst: Path, inputs: list[np.ndarray], method: str,
                           metadata: dict[str, Any]) -> dict[str, Any]:
    """FP32 ONNX -> INT8 Q/DQ ONNX that TensorRT's parser accepts (recipe :data:`TENSORRT_QDQ`).

    Raises:
        DataError: no calibration inputs.
        ArtifactError: the result still breaks a TensorRT rule (:func:`tensorrt_qdq_problems`).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from btseg.errors import ArtifactError
    from btseg.export.onnx import finalize

    if not inputs:
        raise DataError("INT8 calibration: no images")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    src, dst = Path(src), Path(dst)
    pre, raw = dst.with_name(dst.stem + ".pre.onnx"), dst.with_name(dst.stem + ".raw.onnx")
    r = TENSORRT_QDQ
    extra_options = dict(r["extra_options"], **({"CalibPercentile": 99.999} if method == "percentile" else {}))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        excluded = _output_producers(onnx.load(str(pre), load_external_data=False))
        quantize_static(str(pre), str(raw), _reader(inputs), quant_format=QuantFormat.QDQ,
                        per_channel=r["per_channel"], activation_type=getattr(QuantType, r["activation_type"]),
                        weight_type=getattr(QuantType, r["weight_type"]), calibrate_method=methods[method],
                        nodes_to_exclude=excluded, extra_options=extra_options)
    proto = onnx.load(str(raw))
    for p in (pre, raw):
        p.unlink(missing_ok=True)
    problems = tensorrt_qdq_problems(proto)
    if problems:
        raise ArtifactError(f"{src}: the TensorRT Q/DQ graph breaks TensorRT rules: {'; '.join(problems[:3])}")
    finalize(proto, dst, metadata)
    return {"quantizer": "onnxruntime.quantization.quantize_static", "recipe": "tensorrt", "format": "QDQ",
            "calib_method": method, "per_channel_weights": True, "activation_symmetric": True,
            "weight_symmetric": True, "quantize_bias": False, "fp32_nodes": excluded,
            "weight_type": "int8", "activation_type": "int8", "calib_images": len(inputs),
            **({"calib_percentile": extra_options["CalibPercentile"]} if method == "percentile" else {})}


def tensorrt_qdq_problems(model: Any) -> list[str]:
    """Why TensorRT would reject or mis-build this Q/DQ graph (empty when it is fine):
    a DequantizeLinear of a non-INT8 tensor (INT32 bias), a non-zero or non-INT8 zero
    point, or Q/DQ on a graph output."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    outs = {o.name for o in model.graph.output}
    problems = []
    for n in model.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if outs & set(n.output):
            problems.append(f"{n.op_type} {n.name!r} produces graph output {sorted(outs & set(n.output))}")
        zp = inits.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is not None and zp.data_type != TensorProto.INT8:
            problems.append(f"{n.op_type} {n.name!r}: zero point of type "
                            f"{TensorProto.DataType.Name(zp.data_type)}, TensorRT takes INT8 only")
        elif zp is not None and numpy_helper.to_array(zp).any():
            problems.append(f"{n.op_type} {n.name!r}: non-zero zero point (TensorRT needs symmetric)")
        x = inits.get(n.input[0])
        if n.op_type == "DequantizeLinear" and x is not None and x.data_type != TensorProto.INT8:
            problems.append(f"DequantizeLinear {n.name!r} of a {TensorProto.DataType.Name(x.data_type)} "
                            "initializer (TensorRT's parser takes INT8 there; quantize with QuantizeBias=False)")
    return problems
