"""The image arrays the runtime accepts, checked in one place.

Below :mod:`btseg.runtime.inputs` (files, DICOM, video) and :mod:`btseg.runtime.regions`
(ultrasound regions, ROI), which both validate arrays here; it imports no other runtime
module, so neither needs a lazy import to reach it.

Example::

    >>> import numpy as np
    >>> check_image(np.zeros((4, 4), np.uint8)).shape
    (4, 4)
"""

from __future__ import annotations

import numpy as np

from btseg.errors import DataError

_FLOAT_SLACK = 1e-3  # float images computed as x / 255 may round a hair past 1
_DTYPES = (np.uint8, np.uint16, np.float32, np.float64, np.bool_)


def check_image(image: object, what: str = "image") -> np.ndarray:
    """Validate one image array; raises DataError naming the problem and what is expected.

    Accepted ranges per dtype: uint8 0..255, uint16 0..65535 (the full range is white),
    float32/float64 0..1, bool; either byte order (a big-endian ``>u2`` array, as
    ``np.frombuffer`` of DICOM/TIFF bytes gives, is the same uint16 values).  A float image outside 0..1 (e.g. 0..255) is refused rather
    than guessed: rescale it with :func:`to_unit_range`.  NaN/inf are refused.
    """
    if not isinstance(image, np.ndarray):
        raise DataError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise DataError(f"{what}: empty array of shape {image.shape}; expected an HxW or HxWxC image")
    image = native_order(image)
    if image.dtype.type not in _DTYPES:
        raise DataError(f"{what}: unsupported dtype {image.dtype}; expected uint8, uint16 or float32")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DataError(f"{what}: shape {image.shape}; expected HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)")
    if image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise DataError(f"{what}: contains NaN or inf values; expected finite intensities")
        lo, hi = float(image.min()), float(image.max())
        if lo < -_FLOAT_SLACK or hi > 1 + _FLOAT_SLACK:
            raise DataError(f"{what}: {image.dtype} image holds values in [{lo:g}, {hi:g}]; float images must be "
                            "in 0..1 (for 0..255 data pass uint8, or to_unit_range(image, (0, 255)))")
    return image


def native_order(image: np.ndarray) -> np.ndarray:
    """``image`` with its values in this machine's byte order (a copy only when needed)."""
    return image if image.dtype.isnative else image.astype(image.dtype.newbyteorder("="))
