"""The one place image files are opened and decoded: bounded, regular files only.

Both the data loaders (:mod:`btseg.data`) and the runtime (:mod:`btseg.runtime.inputs`)
read images through this module, so every caller gets the same guarantees:

* **regular files only**: FIFOs, devices (``/dev/zero``), sockets and directories are
  refused from ``os.stat`` without being opened for reading; the file is then opened with
  ``O_NONBLOCK`` and checked again on the open descriptor (no hang if it was swapped);
* **bounded**: the file size (``max_file_mb``) is checked from ``stat`` and the pixel count
  (``max_pixels``) from the *header* (PNG IHDR, JPEG SOF, TIFF, BMP, read by PIL, which
  reads only the header) before any pixel is decoded, so a 400 KB PNG declaring
  20000x20000 costs nothing;
* **whole images only**: a PNG/JPEG without its end marker, a PNG whose data is cut short,
  and a JPEG cut short with an end marker appended (libjpeg fills the missing blocks with
  flat grey and says nothing) are :class:`~btseg.errors.DataError`, never a half-grey image.

Limits come from, in order: the caller's :class:`Limits`, the environment
(``BTSEG_MAX_PIXELS``, ``BTSEG_MAX_FILE_MB``), the defaults (50 MP, 1024 MB).

Example::

    >>> img = decode_image("scan.png")                          # doctest: +SKIP
    >>> decode_image("huge.png", Limits(max_pixels=10_000_000)) # doctest: +SKIP
    DataError: huge.png: image is 20000x20000 = 400.0 MP; the limit is 10.0 MP ...

This module imports neither torch nor any other btseg module but :mod:`btseg.errors`.
"""

from __future__ import annotations

import errno
import io
import math
import os
import re
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from btseg.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".mpg", ".mpeg", ".wmv", ".m4v")
DICOM_SUFFIXES = (".dcm", ".dicom")
MEDIA_SUFFIXES = IMAGE_SUFFIXES + DICOM_SUFFIXES + VIDEO_SUFFIXES
SIZE_CHANGE = "a size change mid-stream is refused, not resized"
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_FILE_MB = 1024.0
# formats PIL may report for the suffixes above (MPO: a JPEG with extra frames, as phones write)
_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "DIB", "TIFF"}
_CORRUPT = re.compile(r"corrupt|truncat|premature", re.IGNORECASE)
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))

# PIL's own decompression-bomb guard agrees with ours (it raises above twice this value)
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Limits:
    """What one input may cost before it is refused.

    Attributes:
        max_pixels: most pixels of one frame (width x height), from the header.
        max_file_mb: largest file, in MB (10^6 bytes), from ``stat``.
        max_total_pixels: most pixels of all frames of one DICOM cine together.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_mb: float = DEFAULT_MAX_FILE_MB
    max_total_pixels: int = 2_000_000_000

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_file_mb", "max_total_pixels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{name}={v!r}: expected a finite number > 0")

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 1e6)

    @classmethod
    def resolve(cls, max_pixels: int | None = None, max_file_mb: float | None = None) -> "Limits":
        """Limits from the arguments, else ``BTSEG_MAX_PIXELS`` / ``BTSEG_MAX_FILE_MB``, else defaults."""
        px = max_pixels if max_pixels is not None else _env("BTSEG_MAX_PIXELS", DEFAULT_MAX_PIXELS)
        mb = max_file_mb if max_file_mb is not None else _env("BTSEG_MAX_FILE_MB", DEFAULT_MAX_FILE_MB)
        return cls(max_pixels=int(px), max_file_mb=float(mb))

    def check_pixels(self, what: str, width: int, height: int, frames: int = 1) -> None:
        """DataError when one frame, or all frames together, exceed the limits."""
        if width <= 0 or height <= 0 or frames <= 0:
            raise DataError(f"{what}: header declares {width}x{height} x {frames} frame(s); expected positive sizes")
        if width * height > self.max_pixels:
            raise DataError(f"{what}: image is {width}x{height} = {width * height / 1e6:.1f} MP; the limit is "
                            f"{self.max_pixels / 1e6:.1f} MP (--max-pixels / BTSEG_MAX_PIXELS)")
        if width * height * frames > self.max_total_pixels:
            raise DataError(f"{what}: {frames} frames of {width}x{height} = {width * height * frames / 1e6:.0f} MP; "
                            f"the limit is {self.max_total_pixels / 1e6:.0f} MP per file")


def _env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number > 0") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a finite number > 0")
    return value


def _limits(limits: Limits | None) -> Limits:
    return limits if limits is not None else Limits.resolve()


def check_regular(path: str | os.PathLike, limits: Limits | None = None) -> os.stat_result:
    """``os.stat`` the path (following links) and refuse anything but a non-empty regular file
    within the size limit.  Never opens the file."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as e:
        raise DataError(f"{path}: cannot stat ({e.strerror or e})") from e
    _check_stat(path, st, _limits(limits))
    return st


def _check_stat(path: Path, st: os.stat_result, limits: Limits) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        raise DataError(f"{path}: is {kind}; expected a regular image, DICOM or video file")
    if st.st_size == 0:
        raise DataError(f"{path}: empty file; expected an image, DICOM or video file")
    if st.st_size > limits.max_bytes:
        raise DataError(f"{path}: file is {st.st_size / 1e6:.1f} MB; the limit is {limits.max_file_mb:g} MB "
                        "(--max-file-mb / BTSEG_MAX_FILE_MB)")


def open_regular(path: str | os.PathLike, limits: Limits | None = None) -> io.BufferedReader:
    """Open a regular file for binary reading, refusing special files without blocking on them."""
    path = Path(path)
    limits = _limits(limits)
    check_regular(path, limits)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as e:
        reason = "too many symbolic links" if e.errno == errno.ELOOP else (e.strerror or str(e))
        raise DataError(f"{path}: cannot open ({reason})") from e
    try:
        _check_stat(path, os.fstat(fd), limits)  # it may have been swapped since the stat above
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_bytes(path: str | os.PathLike, limits: Limits | None = None) -> bytes:
    """The whole content of a bounded regular file."""
    limits = _limits(limits)
    with open_regular(path, limits) as f:
        try:
            data = f.read(limits.max_bytes + 1)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if len(data) > limits.max_bytes:
        raise DataError(f"{path}: file grew past the {limits.max_file_mb:g} MB limit while being read")
    return data


@dataclass(frozen=True)
class Header:
    """What an image file's header declares."""

    width: int
    height: int
    format: str


def header_of(data: bytes, what: str, limits: Limits | None = None) -> Header:
    """Parse only the header of an encoded image and check its pixel count against the limits."""
    limits = _limits(limits)
    if Image.MAX_IMAGE_PIXELS is not None and limits.max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limits.max_pixels  # only ever raised: PIL must not refuse what we allow
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(io.BytesIO(data)) as im:
                w, h, fmt = int(im.size[0]), int(im.size[1]), str(im.format)
        bad = [str(c.message) for c in caught if _CORRUPT.search(str(c.message))]
        if bad:  # a decoder warning about the file itself is an error, never a guess
            raise DataError(f"{what}: corrupt image header ({bad[0].strip()})")
    except Image.DecompressionBombError as e:  # more than twice PIL's limit: size it to say so
        w, h, fmt = _size_past_bomb_check(data, str(e))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, EOFError) as e:
        raise DataError(f"{what}: not a readable image ({e.__class__.__name__}); "
                        "expected PNG, JPEG, BMP or TIFF") from e
    if fmt not in _FORMATS:
        raise DataError(f"{what}: {fmt} image; expected PNG, JPEG, BMP or TIFF")
    limits.check_pixels(what, w, h)
    return Header(w, h, fmt)


def _size_past_bomb_check(data: bytes, why: str) -> tuple[int, int, str]:
    """The header size of an image PIL's Image.open refused as too large: the same format
    plugin, run directly, parses the header without that check (no pixel is decoded)."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if fmt in _FORMATS and (accept is None or accept(data[:16])):
            try:
                with factory(io.BytesIO(data), None) as im:
                    return int(im.size[0]), int(im.size[1]), fmt
            except (OSError, ValueError, SyntaxError, struct.error, EOFError):
                continue
    raise DataError(why)


def image_size(path: str | os.PathLike, limits: Limits | None = None) -> tuple[int, int]:
    """(height, width) of an image file from its header only, after the regular-file, size
    and pixel checks.  Reads at most the first 1 MB."""
    path = Path(path)
    limits = _limits(limits)
    with open_regular(path, limits) as f:
        head = f.read(1 << 20)
    try:
        hd = header_of(head, str(path), limits)
    except DataError:
        if len(head) < (1 << 20):
            raise
        hd = header_of(read_bytes(path, limits), str(path), limits)  # a header past the first MB (TIFF)
    return hd.height, hd.width


def decode_image(path: str | os.PathLike, limits: Limits | None = None) -> np.ndarray:
    """Decode a PNG/JPEG/BMP/TIFF file as stored: HxW gray, HxWx3 RGB or HxWx4 RGBA; uint8 or
    uint16.  Bounded and truncation-checked (see the module docstring)."""
    path = Path(path)
    limits = _limits(limits)
    return decode_bytes(read_bytes(path, limits), str(path), limits)


def decode_bytes(data: bytes, what: str, limits: Limits | None = None,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an encoded image held in memory (a file's bytes, an MJPEG video frame) with the
    same header, pixel-limit and truncation checks as :func:`decode_image`; ``size``
    (width, height), when given, is the size the header must declare (a video stream's)."""
    limits = _limits(limits)
    hd = header_of(data, what, limits)
    if size is not None and (hd.width, hd.height) != tuple(size):
        raise DataError(f"{what}: frame is {hd.width}x{hd.height}, the stream is {size[0]}x{size[1]}; {SIZE_CHANGE}")
    why = truncation(data, hd.format)
    if why:
        raise DataError(f"{what}: truncated image ({why})")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as e:
        raise DataError(f"{what}: the {hd.format} decoder failed ({str(e).strip().splitlines()[-1]})") from e
    if img is None:
        raise DataError(f"{what}: cannot decode the {hd.format} image (truncated or corrupt data)")
    if img.shape[:2] != (hd.height, hd.width):
        raise DataError(f"{what}: decoded {img.shape[1]}x{img.shape[0]} but the header says "
                        f"{hd.width}x{hd.height}; refusing an ambiguous file")
    if hd.format in ("JPEG", "MPO") and grey_filled(img):
        raise DataError(f"{what}: truncated image (JPEG data ends early: its last 8x8 block decodes to "
                        "flat grey 128, what libjpeg fills in for missing data)")
    return bgr_to_rgb(img)


def truncation(data: bytes, fmt: str) -> str | None:
    """Cheap end-of-stream checks OpenCV skips (it decodes some truncated files silently)."""
    if fmt == "PNG" and b"IEND" not in data[-64:]:
        return "PNG has no IEND chunk"
    if fmt in ("JPEG", "MPO") and b"\xff\xd9" not in data.rstrip(b"\x00")[-64:]:
        return "JPEG has no end-of-image marker"
    return None


def grey_filled(img: np.ndarray) -> bool:
    """True when the bottom-right 8x8 block (on the JPEG block grid) is exactly 128 in every
    channel: libjpeg's fill for blocks whose data is missing.  A real image that ends in a
    flat mid-grey block is refused too (documented in docs/runtime.md)."""
    h, w = img.shape[:2]
    block = img[(h - 1) // 8 * 8:, (w - 1) // 8 * 8:]
    return img.dtype == np.uint8 and bool((block == 128).all())


def bgr_to_rgb(img: np.ndarray) -> np.ndarray:
    """OpenCV's BGR(A) channel order -> RGB(A); gray images unchanged."""
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if img.ndim == 3 and img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def media_kind(path: str | os.PathLike) -> str | None:
    """``image``, ``dicom`` or ``video`` from the suffix; None for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    return None
