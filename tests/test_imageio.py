"""btseg.imageio: the one bounded image reader (regular files, limits, truncation), fuzzed."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg.errors import ConfigError, DataError
from btseg.imageio import Limits, check_regular, decode_image, image_size, read_bytes

SIG = b"\x89PNG\r\n\x1a\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_declaring(w: int, h: int, idat: bytes = b"", depth: int = 8, color: int = 0) -> bytes:
    """A PNG whose IHDR says w x h (valid CRCs) with whatever IDAT payload is given."""
    return (SIG + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def smooth(h: int = 64, w: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur((rng.random((h, w)) * 255).astype(np.uint8), (5, 5), 0)


def test_png_declaring_60000_squared_is_refused_from_the_header(tmp_path):
    p = tmp_path / "bomb.png"
    p.write_bytes(png_declaring(60000, 60000, zlib.compress(b"\0" * 1000)))
    with pytest.raises(DataError, match=r"bomb\.png: .*(3600|limit)"):
        decode_image(p)
    with pytest.raises(DataError, match="limit"):
        image_size(p)


def test_small_file_declaring_20000_squared_costs_nothing(tmp_path):
    # 400 MP of zeros compress to ~400 KB: the header check must refuse before any decode
    raw = zlib.compress(b"\0" * (20001 * 2000), 9)  # a slice is enough to look real
    p = tmp_path / "zip.png"
    p.write_bytes(png_declaring(20000, 20000, raw))
    with pytest.raises(DataError, match=r"20000x20000 = 400\.0 MP; the limit is 50\.0 MP"):
        decode_image(p)


def test_limits_are_configurable_and_validated(tmp_path, monkeypatch):
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), smooth(100, 100))
    assert decode_image(p, Limits(max_pixels=10_000)).shape == (100, 100)
    with pytest.raises(DataError, match="limit is 0.0 MP"):
        decode_image(p, Limits(max_pixels=9_999))
    monkeypatch.setenv("BTSEG_MAX_PIXELS", "9999")
    with pytest.raises(DataError, match="BTSEG_MAX_PIXELS"):
        decode_image(p)
    monkeypatch.setenv("BTSEG_MAX_PIXELS", "nan")
    with pytest.raises(ConfigError, match="BTSEG_MAX_PIXELS"):
        Limits.resolve()
    monkeypatch.delenv("BTSEG_MAX_PIXELS")
    with pytest.raises(DataError, match="the limit is 0.001 MB"):
        decode_image(p, Limits(max_file_mb=0.001))
    for bad in (0, -1, float("inf"), float("nan"), True):
        with pytest.raises(ConfigError):
            Limits(max_pixels=bad)


@pytest.mark.parametrize("kind", ["fifo", "dir", "devzero", "loop", "empty", "missing"])
def test_special_files_refused_without_blocking(tmp_path, kind):
    p = tmp_path / "x.png"
    if kind == "fifo":
        os.mkfifo(p)  # opening it for reading would block forever
    elif kind == "dir":
        p.mkdir()
    elif kind == "devzero":
        p.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "loop":
        p.symlink_to(tmp_path / "y.png")
        (tmp_path / "y.png").symlink_to(p)
    elif kind == "empty":
        p.write_bytes(b"")
    expect = {"fifo": "FIFO", "dir": "directory", "devzero": "character device", "loop": "symbolic links",
              "empty": "empty file", "missing": "not found"}[kind]
    for fn in (check_regular, read_bytes, decode_image, image_size):
        with pytest.raises(DataError, match=expect):
            fn(p)


def jpeg_bytes(img: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.mark.parametrize("color", [False, True])
def test_jpeg_cut_short_with_end_marker_appended_is_refused(tmp_path, color):
    img = smooth(96, 80)
    if color:
        img = np.dstack([img, img[::-1], 255 - img])
    data = jpeg_bytes(img)
    good = tmp_path / "good.jpg"
    good.write_bytes(data)
    assert decode_image(good).shape[:2] == (96, 80)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) * 2 // 3] + b"\xff\xd9")  # libjpeg fills the rest with grey, silently
    with pytest.raises(DataError, match="cut.jpg: truncated image"):
        decode_image(cut)
    (tmp_path / "noeoi.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated|cannot decode"):
        decode_image(tmp_path / "noeoi.jpg")


def test_png_cut_short_with_iend_appended_is_refused(tmp_path):
    data = cv2.imencode(".png", smooth())[1].tobytes()
    p = tmp_path / "cut.png"
    p.write_bytes(data[: len(data) // 2] + chunk(b"IEND", b""))
    with pytest.raises(DataError, match="cut.png"):
        decode_image(p)


def test_formats_and_dtypes_read_as_stored(tmp_path):
    g16 = (smooth().astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "a.tiff"), g16)
    cv2.imwrite(str(tmp_path / "b.bmp"), np.dstack([smooth()] * 3))
    assert decode_image(tmp_path / "a.tiff").dtype == np.uint16
    assert decode_image(tmp_path / "b.bmp").shape == (64, 64, 3)
    assert image_size(tmp_path / "a.tiff") == (64, 64)
    (tmp_path / "c.png").write_bytes(b"GIF89a" + b"\0" * 40)
    with pytest.raises(DataError, match="c.png"):
        decode_image(tmp_path / "c.png")


# -- property-based: a hostile header gives an error or a correct image, never a traceback or
# -- a huge allocation (the limit is set low so that any accepted image is small)
SMALL = Limits(max_pixels=256 * 256, max_file_mb=1)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read(path: Path):
    try:
        return decode_image(path, SMALL)
    except DataError:
        return None


@FUZZ
@given(w=st.integers(0, 2**32 - 1), h=st.integers(0, 2**32 - 1), depth=st.sampled_from([1, 2, 4, 8, 16, 3, 0]),
       color=st.sampled_from([0, 2, 3, 4, 6, 1, 7]), idat=st.binary(max_size=512))
def test_fuzz_png_ihdr(tmp_path, w, h, depth, color, idat):
    p = tmp_path / "f.png"
    p.write_bytes(png_declaring(w, h, idat, depth, color))
    img = _read(p)
    assert img is None or (img.shape[:2] == (h, w) and w * h <= SMALL.max_pixels)


@FUZZ
@given(w=st.integers(1, 2**16 - 1), h=st.integers(1, 2**16 - 1), seed=st.integers(0, 2**16))
def test_fuzz_png_valid_image_resized_header(tmp_path, w, h, seed):
    """A real compressed image whose IHDR lies about the size (CRC fixed up)."""
    data = bytearray(cv2.imencode(".png", smooth(24, 20))[1].tobytes())
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    p = tmp_path / "f.png"
    p.write_bytes(bytes(data))
    img = _read(p)
    assert img is None or img.shape[:2] == (h, w)


@FUZZ
@given(prefix=st.sampled_from([SIG, b"\xff\xd8\xff\xe0", b"BM", b"II*\x00", b"MM\x00*"]),
       tail=st.binary(min_size=0, max_size=2048))
def test_fuzz_random_bytes_after_a_signature(tmp_path, prefix, tail):
    p = tmp_path / "f.img"
    p.write_bytes(prefix + tail)
    img = _read(p)
    assert img is None or img.shape[0] * img.shape[1] <= SMALL.max_pixels


@FUZZ
@given(cut=st.floats(0.05, 0.95))
def test_fuzz_truncated_jpeg_anywhere(tmp_path, cut):
    data = jpeg_bytes(smooth(64, 64))
    p = tmp_path / "t.jpg"
    p.write_bytes(data[: max(4, int(len(data) * cut))] + b"\xff\xd9")
    assert _read(p) is None  # cut anywhere in the scan: never a silently grey-filled image
