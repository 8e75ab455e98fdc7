"""Read what an ultrasound cart produces into frames the Segmenter accepts.

* numpy arrays: uint8 / uint16 / float32 (float64 and bool accepted), HxW, HxWx1, HxWx3
  (RGB) or HxWx4 (RGBA);
* image files: PNG, JPEG, BMP, TIFF (read with OpenCV; BGR is turned into RGB);
* DICOM (pydicom): single frame or multi-frame cine; the pixel spacing comes from
  ``PixelSpacing`` or else the first ``SequenceOfUltrasoundRegions`` item's
  ``PhysicalDeltaY/X`` (cm -> mm); MONOCHROME1 is inverted, YBR is converted to RGB, and
  data stored in fewer than 16 bits is scaled up to the full uint16 range (which
  :func:`btseg.preprocess.preprocess` assumes);
* video files (AVI, MP4, ...): every frame through ``cv2.VideoCapture``.

Anything else raises :class:`DataError` saying what was wrong and what was expected.

Example::

    >>> for frame in iter_frames("cine.dcm"):          # doctest: +SKIP
    ...     print(frame.name, frame.image.shape, frame.spacing_mm)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

import cv2
import numpy as np

from btseg.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".wmv", ".m4v")
DICOM_SUFFIXES = (".dcm", ".dicom")
_DTYPES = (np.uint8, np.uint16, np.float32, np.float64, np.bool_)


@dataclass
class Frame:
    """One image to segment and where it came from.

    Attributes:
        image: the pixels (see :func:`check_image`).
        spacing_mm: (row, col) mm per pixel when the source says so, else None.
        source: file name or ``"array"``.
        index: frame number in a cine/video, None for a single image.
        dicom: :class:`btseg.runtime.dicom_meta.DicomInfo` (modality, vendor, ultrasound
            regions) for DICOM frames, else None.
    """

    image: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    source: str = "array"
    index: int | None = None
    dicom: Any = None

    @property
    def name(self) -> str:
        """Output stem: ``<input stem>`` or ``<input stem>_f0003`` for cine frames."""
        stem = Path(self.source).stem if self.source != "array" else "array"
        return stem if self.index is None else f"{stem}_f{self.index:04d}"


def check_image(image: object, what: str = "image") -> np.ndarray:
    """Validate one image array; raises DataError naming the problem and what is expected."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0:
        raise DataError(f"{what}: empty array of shape {image.shape}; expected an HxW or HxWxC image")
    if image.dtype.type not in _DTYPES:
        raise DataError(f"{what}: unsupported dtype {image.dtype}; expected uint8, uint16 or float32")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise DataError(f"{what}: shape {image.shape}; expected HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA)")
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{what}: contains NaN or inf values; expected finite intensities")
    return image


def _bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _looks_truncated(data: bytes) -> str | None:
    """Cheap end-of-stream checks OpenCV skips (it decodes truncated PNG/JPEG silently)."""
    if data.startswith(b"\x89PNG") and b"IEND" not in data[-64:]:
        return "PNG has no IEND chunk"
    if data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data.rstrip(b"\x00")[-64:]:
        return "JPEG has no end-of-image marker"
    return None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF -> HxW gray or HxWx3 RGB / HxWx4 RGBA array, dtype as stored."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from e
    if not data:
        raise DataError(f"{path}: empty file; expected a PNG, JPEG, BMP or TIFF image")
    why = _looks_truncated(data)
    if why:
        raise DataError(f"{path}: truncated image ({why})")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{path}: not a readable image; expected PNG, JPEG, BMP, TIFF, DICOM or video")
    return check_image(_bgr_to_rgb(img), str(path))


def dicom_spacing(ds: object) -> tuple[float, float] | None:
    """(row, col) mm per pixel from PixelSpacing, else the first ultrasound region (cm -> mm)."""
    ps = getattr(ds, "PixelSpacing", None)
    if ps is not None and len(ps) == 2 and float(ps[0]) > 0 and float(ps[1]) > 0:
        return float(ps[0]), float(ps[1])
    for region in getattr(ds, "SequenceOfUltrasoundRegions", None) or []:
        dx, dy = getattr(region, "PhysicalDeltaX", None), getattr(region, "PhysicalDeltaY", None)
        units = (getattr(region, "PhysicalUnitsXDirection", 3), getattr(region, "PhysicalUnitsYDirection", 3))
        if dx and dy and units == (3, 3):  # 3 = cm
            return abs(float(dy)) * 10.0, abs(float(dx)) * 10.0
    return None


def read_dicom(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None]:
    """DICOM -> (frames NxHxW[xC], spacing_mm).  Applies photometric interpretation."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a DICOM file ({e})") from e
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{path}: unreadable or truncated DICOM ({e})") from e
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM has no pixel data (PixelData missing); expected an image or cine")
    try:
        arr = ds.pixel_array
    except (ValueError, RuntimeError, NotImplementedError, AttributeError, EOFError) as e:
        raise DataError(f"{path}: DICOM pixel data cannot be decoded ({str(e).splitlines()[0]})") from e
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(getattr(ds, "SamplesPerPixel", 1))
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames == 1:
        arr = arr[None]
    if photometric == "PALETTE COLOR":  # indices -> RGB through the file's LUT (e.g. Philips captures)
        from btseg.runtime.dicom_meta import apply_palette

        return apply_palette(arr, ds), dicom_spacing(ds)
    if photometric.startswith("YBR") and samples == 3 and _pydicom_major() < 3:
        from pydicom.pixel_data_handlers.util import convert_color_space

        arr = convert_color_space(arr, photometric, "RGB")  # pydicom 3 converts in pixel_array
    if arr.dtype.kind in "iu" and arr.dtype != np.uint8:
        bits = int(getattr(ds, "BitsStored", 16))
        arr = np.clip(arr, 0, 2 ** bits - 1).astype(np.uint16)
        if photometric == "MONOCHROME1":
            arr = (2 ** bits - 1) - arr
        arr = (arr.astype(np.uint32) * 65535 // (2 ** bits - 1)).astype(np.uint16)
    elif photometric == "MONOCHROME1":
        arr = 255 - arr if arr.dtype == np.uint8 else arr.max() - arr
    return arr, dicom_spacing(ds)


def _pydicom_major() -> int:
    import pydicom

    return int(pydicom.__version__.split(".")[0])


def read_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video file as HxWx3 RGB uint8 (lazily)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: not a readable video; expected AVI, MP4, MOV, MKV...")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield _bgr_to_rgb(frame)
    finally:
        cap.release()
    if n == 0:
        raise DataError(f"{path}: video has no decodable frames (empty or truncated)")


def kind_of(path: str | os.PathLike) -> str:
    """``dicom``, ``video`` or ``image``, from the suffix or the DICOM preamble."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix not in IMAGE_SUFFIXES:
        try:
            with open(path, "rb") as f:
                if f.read(132)[128:] == b"DICM":
                    return "dicom"
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from e
    return "image"


def iter_frames(source: str | os.PathLike | np.ndarray,
                allow_modalities: Collection[str] | None = None) -> Iterator[Frame]:
    """Frames of an array, image file, DICOM (one per cine frame) or video file.

    A DICOM whose modality is not ultrasound raises :class:`btseg.errors.ModalityError`
    unless ``allow_modalities`` names it (``["*"]``: any); see :mod:`btseg.runtime.dicom_meta`.
    """
    if isinstance(source, np.ndarray):
        yield Frame(check_image(source))
        return
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    kind = kind_of(path)
    if kind == "image":
        yield Frame(read_image(path), None, str(path))
    elif kind == "dicom":
        from btseg.runtime.dicom_meta import read_dicom_info

        info = read_dicom_info(path, allow_modalities)  # modality and regions, before decoding
        arr, spacing = read_dicom(path)
        for i, img in enumerate(arr):
            yield Frame(check_image(img, f"{path} frame {i}"), spacing, str(path), i if len(arr) > 1 else None, info)
    else:
        for i, img in enumerate(read_video(path)):
            yield Frame(img, None, str(path), i)
