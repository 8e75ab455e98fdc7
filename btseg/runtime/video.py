"""Video files frame by frame, each frame checked: declared vs decoded, size, truncation.

* **Declared vs decoded.** The container's frame count (``CAP_PROP_FRAME_COUNT``: the AVI
  header, the MP4 sample table) is the declared count.  Frames the file declares but does
  not deliver (an AVI cut in half gives 9 of 20) are errors *of those frames*, named, never
  silently dropped.  A container that declares no count reports only what was decoded.
* **MJPEG** (the usual grabber and cart recording codec): the packets are read raw
  (``CAP_PROP_FORMAT = -1``) and each JPEG goes through :func:`btseg.imageio.decode_bytes`,
  the one image decoder: its header must give the stream's size (a size change mid-stream
  is an error, not a resize: OpenCV's decoder silently rescales such frames to the first
  frame's size), and a truncated or grey-filled JPEG is an error of that frame.
* **Other codecs**: OpenCV's decoder; a frame whose size differs from the stream's is an
  error of that frame.  Known limit: a codec whose size change FFmpeg rescales silently
  (as for MJPEG) is not seen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from btseg.errors import DataError
from btseg.imageio import SIZE_CHANGE, Limits, bgr_to_rgb, check_regular, decode_bytes

MJPEG = {"MJPG", "mjpg", "AVI1", "JPEG", "jpeg", "MJPA", "dmb1"}


def fourcc(cap: cv2.VideoCapture) -> str:
    """The capture's codec as four characters (``MJPG``, ``FMP4``, ...)."""
    return (int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little").decode("latin-1")


class VideoFrames:
    """Iterate ``(index, RGB uint8 frame or None, error or None)`` over a video file.

    Attributes (after opening): ``declared`` (frames the container declares, None if it
    does not say), ``width``, ``height``, ``fps``, ``codec``; after iterating: ``decoded``.
    """

    def __init__(self, path: str | os.PathLike, limits: Limits | None = None) -> None:
        self.path = Path(path)
        self.limits = limits if limits is not None else Limits.resolve()
        check_regular(self.path, self.limits)
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise DataError(f"{self.path}: not a readable video (no container or codec OpenCV's FFmpeg "
                                "reads, or cut before its index); expected AVI, MP4, MOV, MKV...")
            self.width, self.height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
            self.declared = count if count > 0 else None
            self.fps = float(cap.get(cv2.CAP_PROP_FPS))
            self.codec = fourcc(cap)
        finally:
            cap.release()
        self.limits.check_pixels(str(self.path), self.width, self.height)
        self.decoded = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        total, got = 0, 0
        for i, img, err in self._raw() if self.codec in MJPEG else self._decoded():
            got += img is not None
            total = i + 1
            yield i, img, err
        self.decoded = got
        if self.declared is not None and total < self.declared:
            for i in range(total, self.declared):
                yield i, None, (f"frame {i} of {self.declared} declared: missing (the file ends after {total} "
                                "frame(s): truncated?)")
        if got == 0 and not self.declared:
            raise DataError(f"{self.path}: video has no decodable frames (empty or truncated)")

    def _raw(self) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            if not cap.set(cv2.CAP_PROP_FORMAT, -1):
                yield from self._decoded()
                return
            i = 0
            while True:
                ok, packet = cap.read()
                if not ok:
                    return
                what = f"{self.path} frame {i}"
                try:
                    img = decode_bytes(packet.tobytes(), what, self.limits, size=(self.width, self.height))
                except DataError as e:
                    yield i, None, str(e)[len(str(self.path)) + 1:].strip()
                else:
                    yield i, rgb3(img), None
                i += 1
        finally:
            cap.release()

    def _decoded(self) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        try:
            i = 0
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                if frame.shape[:2] != (self.height, self.width):
                    yield i, None, (f"frame {i} is {frame.shape[1]}x{frame.shape[0]}, the stream is "
                                    f"{self.width}x{self.height}; {SIZE_CHANGE}")
                else:
                    yield i, bgr_to_rgb(frame), None
                i += 1
        finally:
            cap.release()


def rgb3(img: np.ndarray) -> np.ndarray:
    """A decoded JPEG (gray or RGB) as the HxWx3 RGB uint8 frame every video frame is."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return img[..., :3]
