"""Read what an ultrasound cart produces into frames the Segmenter accepts.

* numpy arrays: HxW, HxWx1, HxWx3 (RGB) or HxWx4 (RGBA) of uint8 (0..255), uint16 (the full
  0..65535 range), float32/float64 (0..1: a float image holding 0..255 is refused, use
  :func:`to_unit_range`) or bool; NaN and inf are refused;
* image files: PNG, JPEG, BMP, TIFF, read through :mod:`btseg.imageio` (regular files only,
  file-size and header pixel limits before decoding, truncated files refused);
* DICOM (pydicom): single frame or multi-frame cine; the pixel spacing comes from
  ``PixelSpacing`` or else the first ``SequenceOfUltrasoundRegions`` item's
  ``PhysicalDeltaY/X`` (cm -> mm); pixel values as a viewer shows them (Modality LUT,
  VOI LUT / window, signed, BitsStored, MONOCHROME1, YBR -> RGB, palette), each frame
  decoded on its own (:mod:`btseg.runtime.dicom_pixels`);
* video files (AVI, MP4, ...): every frame, declared vs decoded counted, MJPEG frames
  through the image decoder (:mod:`btseg.runtime.video`).

Every file is checked to be a regular file within :class:`~btseg.imageio.Limits` before it is
opened (FIFOs, devices, directories are refused without blocking).  Anything else raises
:class:`DataError` saying what was wrong and what was expected.

Example::

    >>> for frame in iter_frames("cine.dcm"):          # doctest: +SKIP
    ...     print(frame.name, frame.image.shape, frame.spacing_mm)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

import numpy as np

from btseg.errors import DataError
from btseg.runtime.arrays import check_image
from btseg.imageio import (DICOM_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES, Limits, check_regular, decode_image,
                           open_regular)

__all__ = ["DICOM_SUFFIXES", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "Frame", "Limits", "check_image", "iter_frames",
           "kind_of", "read_dicom", "read_image", "read_video", "to_unit_range"]


@dataclass
class Frame:
    """One image to segment and where it came from.

    Attributes:
        image: the pixels (see :func:`check_image`).
        spacing_mm: (row, col) mm per pixel when the source says so, else None.
        source: file name or ``"array"``.
        index: frame number in a cine/video, None for a single image.
        dicom: :class:`btseg.runtime.dicom_meta.DicomInfo` (modality, vendor, ultrasound
            regions, pixel mapping) for DICOM frames, else None.
        declared: frames the cine / video file declares (None for a single image).
        error: why this frame could not be read (``iter_frames(errors="yield")``); the
            image is then empty and the frame must not be segmented.
    """

    image: np.ndarray
    spacing_mm: tuple[float, float] | None = None
    source: str = "array"
    index: int | None = None
    dicom: Any = None
    declared: int | None = None
    error: str | None = None

    @property
    def name(self) -> str:
        """Output stem: ``<input stem>`` or ``<input stem>_f0003`` for cine frames."""
        stem = Path(self.source).stem if self.source != "array" else "array"
        return stem if self.index is None else f"{stem}_f{self.index:04d}"


def to_unit_range(image: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Rescale a float image whose intensities span ``value_range`` (e.g. ``(0, 255)``) to the
    0..1 float32 image :func:`check_image` accepts; values outside the range are an error."""
    lo, hi = (float(v) for v in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise DataError(f"value_range={value_range!r}: expected (low, high) with finite low < high")
    arr = np.asarray(image, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise DataError("image: contains NaN or inf values; expected finite intensities")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise DataError(f"image: values in [{arr.min():g}, {arr.max():g}] fall outside value_range {value_range!r}")
    return check_image((arr - lo) / (hi - lo))


def read_image(path: str | os.PathLike, limits: Limits | None = None) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF -> HxW gray or HxWx3 RGB / HxWx4 RGBA array, dtype as stored."""
    return check_image(decode_image(path, limits), str(path))


def dicom_spacing(ds: object, what: str = "DICOM") -> tuple[float, float] | None:
    """(row, col) mm per pixel from PixelSpacing, else the first ultrasound region (cm -> mm).

    A value that is not a number (a damaged header) is a DataError naming the attribute, never
    a bare ValueError that would abort a batch."""
    ps = getattr(ds, "PixelSpacing", None)
    try:
        if ps is not None and len(ps) == 2 and float(ps[0]) > 0 and float(ps[1]) > 0:
            return float(ps[0]), float(ps[1])
    except (TypeError, ValueError) as e:
        raise DataError(f"{what}: PixelSpacing {ps!r}: expected two positive numbers in mm ({e})") from None
    for region in getattr(ds, "SequenceOfUltrasoundRegions", None) or []:
        dx, dy = getattr(region, "PhysicalDeltaX", None), getattr(region, "PhysicalDeltaY", None)
        units = (getattr(region, "PhysicalUnitsXDirection", 3), getattr(region, "PhysicalUnitsYDirection", 3))
        if dx and dy and units == (3, 3):  # 3 = cm
            try:
                return abs(float(dy)) * 10.0, abs(float(dx)) * 10.0
            except (TypeError, ValueError) as e:
                raise DataError(f"{what}: ultrasound region PhysicalDeltaX/Y {dx!r}/{dy!r}: expected numbers in cm "
                                f"({e})") from None
    return None


def open_dicom(path: str | os.PathLike, limits: Limits | None = None) -> Any:
    """Parse a DICOM file (pydicom dataset, pixel data not decoded): regular file within the
    limits, Rows x Columns x NumberOfFrames checked from the header, pixel module checked
    (:func:`btseg.runtime.dicom_pixels.check_pixel_module`), PixelData present."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from btseg.runtime.dicom_meta import HEADER_ERRORS, error_detail, materialize
    from btseg.runtime.dicom_pixels import check_pixel_module

    path = Path(path)
    limits = limits if limits is not None else Limits.resolve()
    size = -1
    try:
        with open_regular(path, limits) as f:
            size = os.fstat(f.fileno()).st_size
            header = pydicom.dcmread(f, stop_before_pixels=True)
            materialize(header)  # pydicom converts values lazily: a cut value fails here, named
            _check_dicom_size(path, header, limits)
            f.seek(0)
            ds = pydicom.dcmread(f)
            materialize(ds)
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a DICOM file ({e})") from e
    except HEADER_ERRORS as e:
        raise DataError(f"{path}: unreadable or truncated DICOM ({error_detail(e)}; the file has {size} bytes)") from e
    if "PixelData" not in ds:
        raise DataError(f"{path}: DICOM has no pixel data (PixelData missing); expected an image or cine")
    check_pixel_module(ds, str(path))
    return ds


def dicom_frames(ds: Any, what: str) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """(index, display frame or None, error or None) for every frame the dataset declares:
    decoded one by one, mapped as a viewer maps them (:mod:`btseg.runtime.dicom_pixels`)."""
    from btseg.runtime.dicom_pixels import decode_frames, mapping_of, to_display

    pi = str(ds.PhotometricInterpretation).strip().upper()
    m = None if pi == "PALETTE COLOR" else mapping_of(ds, what)
    for i, raw, err in decode_frames(ds, what):
        if raw is None:
            yield i, None, err
        elif m is None:  # indices -> RGB through the file's LUT (e.g. Philips captures)
            from btseg.runtime.dicom_meta import apply_palette

            yield i, apply_palette(raw[None], ds)[0], None
        else:
            yield i, to_display(raw, ds, m), None


def read_dicom(path: str | os.PathLike, limits: Limits | None = None) -> tuple[np.ndarray, tuple[float, float] | None]:
    """DICOM -> (frames NxHxW[xC], spacing_mm), pixel values as a viewer shows them (see
    :mod:`btseg.runtime.dicom_pixels`); the first bad frame raises DataError naming it.

    Rows x Columns (per frame) and x NumberOfFrames (per file) are checked against the
    limits from the header, before the pixel data is read."""
    ds = open_dicom(path, limits)
    frames = []
    for _, img, err in dicom_frames(ds, str(path)):
        if err:
            raise DataError(f"{path}: {err}")
        frames.append(img)
    return np.stack(frames), dicom_spacing(ds, str(path))


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def _check_dicom_size(path: Path, ds: object, limits: Limits) -> None:
    def num(name: str, default: int) -> int:
        try:
            return int(getattr(ds, name, default) or default)
        except (TypeError, ValueError):
            raise DataError(f"{path}: DICOM {name} is not a number") from None

    rows, cols = num("Rows", 0), num("Columns", 0)
    if rows or cols:  # no Rows/Columns: no image (reported below as missing PixelData)
        limits.check_pixels(str(path), cols, rows, num("NumberOfFrames", 1) * max(1, num("SamplesPerPixel", 1)))


def read_video(path: str | os.PathLike, limits: Limits | None = None) -> Iterator[np.ndarray]:
    """Every frame of a video file as HxWx3 RGB uint8 (lazily); the first bad or missing
    frame raises DataError naming it (see :class:`btseg.runtime.video.VideoFrames`)."""
    from btseg.runtime.video import VideoFrames

    for _, img, err in VideoFrames(path, limits):
        if err:
            raise DataError(f"{path}: {err}")
        yield img


def kind_of(path: str | os.PathLike, limits: Limits | None = None) -> str:
    """``dicom``, ``video`` or ``image``, from the suffix or the DICOM preamble."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix not in IMAGE_SUFFIXES:
        with open_regular(path, limits) as f:  # never blocks on a FIFO or reads /dev/zero
            if f.read(132)[128:] == b"DICM":
                return "dicom"
    return "image"


def iter_frames(source: str | os.PathLike | np.ndarray, allow_modalities: Collection[str] | None = None,
                limits: Limits | None = None, errors: str = "raise") -> Iterator[Frame]:
    """Frames of an array, image file, DICOM (one per cine frame) or video file.

    Files must be regular files within ``limits`` (default :meth:`Limits.resolve`).
    A DICOM whose modality is not ultrasound raises :class:`btseg.errors.ModalityError`
    unless ``allow_modalities`` names it (``["*"]``: any); see :mod:`btseg.runtime.dicom_meta`.
    Every cine / video frame carries ``declared`` (the frames its file declares).  A missing
    or corrupt frame raises :class:`DataError` naming it (``errors="raise"``, after the good
    frames before it), or with ``errors="yield"`` comes as a :class:`Frame` whose ``error``
    says why and whose ``image`` is empty (never segmentable), and the next frames follow.
    """
    if errors not in ("raise", "yield"):
        raise ValueError(f"errors={errors!r}; expected 'raise' or 'yield'")
    if isinstance(source, np.ndarray):
        yield Frame(check_image(source))
        return
    path = Path(source)
    limits = limits if limits is not None else Limits.resolve()
    check_regular(path, limits)
    kind = kind_of(path, limits)
    if kind == "image":
        yield Frame(read_image(path, limits), None, str(path))
        return
    if kind == "dicom":
        from btseg.runtime.dicom_meta import HEADER_ERRORS, error_detail, read_dicom_info
        from btseg.runtime.dicom_pixels import frame_count

        info = read_dicom_info(path, allow_modalities)  # modality and regions, before decoding
        ds = open_dicom(path, limits)
        try:  # values of the wrong type or form (a multi-valued or non-numeric attribute)
            declared, spacing = frame_count(ds, str(path)), dicom_spacing(ds, str(path))
            info.pixels = _mapping_record(ds, str(path))
        except HEADER_ERRORS as e:
            raise DataError(f"{path}: malformed DICOM header ({error_detail(e)})") from e
        items = dicom_frames(ds, str(path))
    else:
        from btseg.runtime.video import VideoFrames

        video = VideoFrames(path, limits)
        declared, spacing, info, items = video.declared, None, None, iter(video)
    cine = kind == "video" or declared > 1
    for i, img, err in items:
        index = i if cine else None
        if err is None:
            yield Frame(check_image(img, f"{path} frame {i}"), spacing, str(path), index, info, declared)
        elif errors == "raise":
            raise DataError(f"{path}: {err}")
        else:
            yield Frame(np.zeros((0, 0), np.uint8), spacing, str(path), index, info, declared, f"{path}: {err}")


def _mapping_record(ds: Any, what: str) -> dict[str, Any] | None:
    from btseg.runtime.dicom_pixels import mapping_of

    if str(ds.PhotometricInterpretation).strip().upper() == "PALETTE COLOR":
        return {"palette": "PALETTE COLOR lookup table"}
    return mapping_of(ds, what).record()
