"""Write small MJPEG AVI files by hand for the tests: frames of any size, in any order.

OpenCV's ``VideoWriter`` fixes the frame size when it opens; a cart stream whose size changes
mid-stream (a probe or depth change on some grabbers) needs a container written frame by
frame, so this module writes the RIFF structure itself: ``hdrl`` (``avih``, one ``strl``
with ``strh`` + ``strf``), ``movi`` with one ``00dc`` chunk per JPEG, and an ``idx1`` index.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np


def _chunk(tag: bytes, data: bytes) -> bytes:
    return tag + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, body: bytes) -> bytes:
    return b"LIST" + struct.pack("<I", len(body) + 4) + kind + body


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    """One frame (HxW gray or HxWx3 RGB uint8) as JPEG bytes."""
    img = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def write_mjpeg_avi(path: Path, frames: Sequence[np.ndarray], fps: int = 10,
                    declared: int | None = None) -> Path:
    """An MJPEG AVI of ``frames`` (each may have its own size; the header gives the first's).
    ``declared`` overrides the frame count written in the headers."""
    jpegs = [jpeg_bytes(f) for f in frames]
    h, w = frames[0].shape[:2]
    n = len(jpegs) if declared is None else declared
    avih = struct.pack("<10I4I", 1_000_000 // fps, 0, 0, 0x10, n, 0, 1, max(map(len, jpegs)), w, h, 0, 0, 0, 0)
    strh = struct.pack("<4s4sIHHIIIIIIIIhhhh", b"vids", b"MJPG", 0, 0, 0, 0, 1, fps, 0, n,
                       max(map(len, jpegs)), 0xFFFFFFFF, 0, 0, 0, w, h)
    strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
    hdrl = _list(b"hdrl", _chunk(b"avih", avih) + _list(b"strl", _chunk(b"strh", strh) + _chunk(b"strf", strf)))
    movi_body, index, offset = b"", b"", 4
    for j in jpegs:
        c = _chunk(b"00dc", j)
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(j))
        movi_body += c
        offset += len(c)
    body = b"AVI " + hdrl + _list(b"movi", movi_body) + _chunk(b"idx1", index)
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return Path(path)
