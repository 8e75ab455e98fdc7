"""Calibration images and ONNX Runtime static INT8 quantization (explicit Q/DQ).

Calibration images come from a dataset directory (BUSI, Dataset B or images/+masks/
folder, read with :func:`btseg.data.open_dataset`) or, failing a known layout, from any
folder of image files; every image goes through THE preprocessing
(:func:`btseg.preprocess.preprocess`), so INT8 ranges are measured on exactly what
the network sees on the cart.  Images are picked evenly spaced over the sorted set, so
every class of a BUSI-layout set is represented.

The INT8 model is a QDQ graph with per-channel symmetric INT8 weights and symmetric INT8
activations (``ActivationSymmetric``), the form TensorRT builds explicit-precision
engines from.

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

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_masks(self) -> bool:
        return bool(self.masks) and all(m is not None for m in self.masks)

    def inputs(self, spec: PreprocessSpec) -> list[np.ndarray]:
        """Each image preprocessed to a 1xCxHxW float32 batch of one."""
        return [preprocess(im, spec)[None] for im in self.images]

    def describe(self) -> dict[str, Any]:
        return {"root": self.root, "layout": self.layout, "used": len(self), "requested": self.requested,
                            "available": self.available, "with_masks": self.has_masks,
                "overlaps_calibration": self.overlaps}


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


def load_images(root: str | Path, n: int, what: str = "calibration", exclude: Sequence[int] = ()) -> ImageSet:
    """Pick ``n`` images (and masks, when there are any) from ``root``.

    Fewer images than asked is a warning, not an error: all of them are used and the
    count is recorded by the caller.

    Raises:
        DataError: ``root`` is missing, unreadable, holds no images, or a picked file is bad.
    """
    from btseg.data import detect_layout, open_dataset
    from btseg.data.dataset import load_image

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
    if layout == "images":
        files = _plain_images(root)
        if not files:
            raise DataError(f"{what} data {root}: no images found (looked for *.png, *.jpg, *.bmp, *.tif)")
        idx = _spread(len(files), n, exclude)
        images, masks, ids = [load_image(files[i]) for i in idx], [None] * len(idx), [str(files[i]) for i in idx]
        available = len(files)
    else:
        ds = open_dataset(root, layout, include_normal=True)
        if len(ds) == 0:
            raise DataError(f"{what} data {root}: the {layout} layout holds no images")
        idx = _spread(len(ds), n, exclude)
        samples = [ds[i] for i in idx]
        images, masks, ids = [s.image for s in samples], [s.mask for s in samples], [s.id for s in samples]
        available = len(ds)
    if available < n:
        warnings.warn(f"{what} data {root}: asked for {n} images, only {available} available; using {available}",
                      FewImagesWarning, stacklevel=2)
    return ImageSet(str(root), layout, images, masks, ids, available, n, idx)


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


def quantize_onnx(src: Path, dst: Path, inputs: list[np.ndarray], method: str,
                  metadata: dict[str, Any]) -> dict[str, Any]:
    """FP32 ONNX -> INT8 QDQ ONNX calibrated on ``inputs`` (see the module docstring).

    Returns the quantization settings, for the manifest's ``extra``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from btseg.export.onnx import finalize

    if not inputs:
        raise DataError("INT8 calibration: no images")
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    src, dst = Path(src), Path(dst)
    pre = dst.with_name(dst.stem + ".pre.onnx")
    raw = dst.with_name(dst.stem + ".raw.onnx")
    extra_options = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if method == "percentile":
        extra_options["CalibPercentile"] = 99.999
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # shape inference + ORT's basic graph optimisations make the quantizer's job exact
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(raw), _reader(inputs), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=methods[method], extra_options=extra_options)
    proto = onnx.load(str(raw))
    for p in (pre, raw):
        p.unlink(missing_ok=True)
    finalize(proto, dst, metadata)
    return {"quantizer": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "calib_method": method, "per_channel_weights": True, "activation_symmetric": True,
            "weight_type": "int8", "activation_type": "int8", "calib_images": len(inputs),
            **({"calib_percentile": extra_options["CalibPercentile"]} if method == "percentile" else {})}
