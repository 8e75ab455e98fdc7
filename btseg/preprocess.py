"""THE preprocessing: one implementation, used by training, export calibration and runtime.

The preprocessing is data (:class:`PreprocessSpec`), saved in every ``model.json`` and
``manifest.json``; :func:`preprocess` turns any image a cart produces into the network's
input from that spec, with numpy and OpenCV only, so the runtime needs no torch.

Example::

    >>> import numpy as np
    >>> spec = PreprocessSpec(size=(128, 128))
    >>> x = preprocess(np.zeros((480, 640), np.uint8), spec)
    >>> x.shape, x.dtype
    ((1, 128, 128), dtype('float32'))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from btseg.errors import ConfigError, DataError

_INTERP = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR,
           "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}
INTERPOLATIONS = tuple(_INTERP)  # the choices of PreprocessSpec.interpolation (model.json's schema uses them)
NORMALIZATIONS = ("meanstd", "minmax")  # the choices of PreprocessSpec.normalize


@dataclass(frozen=True)
class PreprocessSpec:
    """How a raw image becomes the network input.

    Args:
        size: (height, width) the network sees.
        interpolation: resize interpolation for the image (``nearest|linear|area|cubic``).
        grayscale: convert RGB/RGBA to one channel (ITU-R 601 luma, as OpenCV does).
        normalize: ``"meanstd"``: ``(x/scale - mean) / std``; ``"minmax"``: per-image
            rescale to [0, 1] (robust to 16-bit and float inputs of unknown range).
        scale: divisor that maps the input dtype's range to [0, 1] for ``meanstd``.
        mean, std: normalisation constants applied after scaling.
        layout: always ``"NCHW"``; recorded so consumers need not assume it.
        dtype: network input dtype.
    """

    size: tuple[int, int] = (256, 256)
    interpolation: str = "linear"
    grayscale: bool = True
    normalize: str = "meanstd"
    scale: float = 255.0
    mean: float = 0.5
    std: float = 0.25
    layout: str = "NCHW"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERP:
            raise ConfigError(f"interpolation {self.interpolation!r}: expected one of {sorted(_INTERP)}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize {self.normalize!r}: expected 'meanstd' or 'minmax'")
        if len(self.size) != 2 or min(self.size) < 8:
            raise ConfigError(f"size {self.size!r}: expected (height, width), each >= 8")
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = list(self.size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "size" in known:
            known["size"] = tuple(known["size"])
        return cls(**known)


def to_gray(image: np.ndarray) -> np.ndarray:
    """HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) -> HxW, same dtype. Validates the array."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"image: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise DataError(f"image: empty array of shape {image.shape}")
    if not image.dtype.isnative:  # a big-endian >u2 array holds the same uint16 values
        image = image.astype(image.dtype.newbyteorder("="))
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64, bool):
        raise DataError(f"image: unsupported dtype {image.dtype}; expected uint8, uint16 or float32")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return image
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"image: shape {image.shape}; expected HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)")
    rgb = image[..., :3]
    if rgb.dtype == np.float64:
        rgb = rgb.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def preprocess(image: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """One image (any layout :func:`to_gray` accepts) -> CxHxW float32 network input.

    Raises:
        DataError: empty array, wrong dimensions, unsupported dtype, NaN or inf values.
    """
    if not spec.grayscale:
        raise ConfigError("grayscale=False: only single-channel models are supported")
    g = to_gray(image)
    if g.dtype == bool:
        g = g.astype(np.uint8) * 255
    if g.dtype.kind == "f":
        g = g.astype(np.float32)
        if not np.isfinite(g).all():
            raise DataError("image: contains NaN or inf values")
    source = g.dtype  # native byte order (to_gray): a >u2 array is uint16 here
    h, w = spec.size
    if g.shape != (h, w):
        g = cv2.resize(g, (w, h), interpolation=_INTERP[spec.interpolation])
    x = g.astype(np.float32)
    if spec.normalize == "minmax":
        lo, hi = float(x.min()), float(x.max())
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    else:
        # uint16 frames are mapped to the same [0, 1] range as uint8 ones
        scale = 65535.0 if source == np.uint16 else (1.0 if source.kind == "f" else spec.scale)
        x = (x / scale - spec.mean) / spec.std
    return x[None].astype(spec.dtype, copy=False)


def preprocess_batch(images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """List of images -> NxCxHxW float32, each through :func:`preprocess`."""
    if len(images) == 0:
        raise DataError("images: empty batch")
    return np.stack([preprocess(im, spec) for im in images])


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (height, width) with nearest-neighbour interpolation."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(bool, copy=False)
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def resize_prob(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a float probability map back to the input image's (height, width)."""
    h, w = size
    if prob.shape == (h, w):
        return prob
    return cv2.resize(prob.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
