"""Live frame sources for a cart: a capture device, a stream URL, a video file, a DICOM cine.

:class:`FrameSource` reads on its own thread into a bounded queue; when the consumer (the
segmenter) is busy and the queue is full, the *oldest* waiting frame is dropped and counted,
so what the operator sees is never more than ``depth`` frames old.  A source that ends, or
that delivers no frame for ``timeout`` seconds (an unplugged grabber, a stalled stream, a
pipe whose writer hung), ends the iteration and says so in :attr:`FrameSource.stats`; the
consumer is never left waiting on a blocked ``read()``.

Sources (``spec``):

* ``0`` / ``"0"`` / ``"/dev/video0"``: a capture device (OpenCV, V4L2 on Linux);
* ``"rtsp://..."``, ``"http://..."``, ``"udp://..."``: a stream, through OpenCV's FFmpeg;
* a string with ``" ! "``: a GStreamer pipeline, where OpenCV was built with GStreamer
  (otherwise :class:`BackendUnavailableError` says so);
* a named pipe or character device other than ``/dev/video*``: an FFmpeg stream read with
  minimal probing (e.g. MJPEG from another process; ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is
  set to :data:`LOW_LATENCY` while it opens, unless you set it yourself);
* a video file or a DICOM cine (modality checked as in :func:`iter_frames`), played at
  ``fps`` (default: the file's own rate) and optionally looped;
* any iterable of frames / arrays (e.g. a simulator), played at ``fps``.

Example::

    >>> with FrameSource("/dev/video0", depth=2, timeout=2.0) as src:   # doctest: +SKIP
    ...     for frame in src:
    ...         out = segmenter.segment(frame)
    >>> src.stats   # doctest: +SKIP
    {'kind': 'device', 'status': 'stalled', 'captured': 912, 'dropped': 301, ...}
"""

from __future__ import annotations

import os
import queue
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

import cv2

from btseg.errors import BackendUnavailableError, DataError
from btseg.imageio import SIZE_CHANGE, decode_bytes
from btseg.runtime.inputs import Frame, check_image, iter_frames, kind_of
from btseg.runtime.video import MJPEG, fourcc, rgb3

LOW_LATENCY = "probesize;32|analyzeduration;0|fflags;nobuffer"  # FFmpeg options for pipes
_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_ENV_LOCK = threading.Lock()


@dataclass
class LiveFrame(Frame):
    """A :class:`Frame` with the time it was captured (``time.perf_counter()``)."""

    t_capture: float = 0.0


def source_kind(spec: Any) -> str:
    """``device``, ``gstreamer``, ``url``, ``pipe``, ``dicom``, ``video`` or ``frames``."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return "device"
    if not isinstance(spec, (str, os.PathLike)):
        return "frames"
    s = str(spec)
    if " ! " in s:
        return "gstreamer"
    if "://" in s:
        return "url"
    if s.startswith("/dev/video"):
        return "device"
    try:
        mode = os.stat(s).st_mode
    except OSError as e:
        raise DataError(f"{s}: source not found ({e.strerror}); expected a device index, /dev/videoN, a URL, "
                        f"a GStreamer pipeline, a video file or a DICOM cine") from e
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return "pipe"
    return "dicom" if kind_of(s) == "dicom" else "video"


def _has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    line = next((ln for ln in info.splitlines() if ln.strip().startswith("GStreamer:")), "")
    return "YES" in line


class FrameSource:
    """Frames from ``spec`` through a bounded drop-oldest queue read on its own thread.

    Args:
        spec: see the module docstring.
        depth: frames that may wait for the consumer; older ones are dropped (counted).
        timeout: seconds without a new frame after which the source counts as stalled.
        start_timeout: the same before the first frame (opening a device or stream, probing
            a pipe, decoding a file's first frame take longer); default ``max(timeout, 10)``.
        fps: pace for files and iterables (default: the file's rate, else 30); live
            sources deliver at their own pace.
        loop: restart a file or iterable at its end (a looping "device").
        allow_modalities: for a DICOM cine, as in :func:`btseg.runtime.iter_frames`.
    """

    def __init__(self, spec: Any, depth: int = 2, timeout: float = 2.0, fps: float | None = None,
                 loop: bool = False, allow_modalities: Collection[str] | None = None,
                 start_timeout: float | None = None) -> None:
        if depth < 1 or not timeout > 0 or (fps is not None and not fps > 0):
            raise DataError(f"source options: depth={depth}, timeout={timeout}, fps={fps}; expected depth >= 1, "
                            f"timeout > 0, fps > 0")
        self.spec, self.kind = spec, source_kind(spec)
        if self.kind == "gstreamer" and not _has_gstreamer():
            raise BackendUnavailableError(f"{spec!r}: this OpenCV was built without GStreamer; use a device "
                                          f"index, /dev/videoN, a URL (FFmpeg) or install an OpenCV with GStreamer")
        if self.kind in ("video", "dicom") and isinstance(spec, (str, os.PathLike)) and not Path(spec).is_file():
            raise DataError(f"{spec}: not a regular file")
        self.name = str(spec) if self.kind != "frames" else "frames"
        self.timeout, self.fps, self.loop, self.allow = float(timeout), fps, loop, allow_modalities
        self.start_timeout = float(start_timeout) if start_timeout is not None else max(self.timeout, 10.0)
        if self.kind == "dicom":
            from btseg.runtime.dicom_meta import read_dicom_info

            read_dicom_info(spec, allow_modalities)  # a refused modality is an error now, not a "stall"
        self._q: "queue.Queue[LiveFrame]" = queue.Queue(maxsize=depth)
        self._stop, self._done = threading.Event(), threading.Event()
        self._lock = threading.Lock()
        self._last = time.perf_counter()
        self.stats: dict[str, Any] = {"source": self.name, "kind": self.kind, "status": "starting", "reason": "",
                                      "captured": 0, "delivered": 0, "dropped": 0}
        self._thread = threading.Thread(target=self._read, name=f"source:{self.name}", daemon=True)
        self._thread.start()

    # -- reader thread ------------------------------------------------------------------
    def _push(self, frame: LiveFrame) -> None:
        with self._lock:
            if self._stop.is_set():  # stalled or closed: a late frame is neither captured nor lost
                return
            self.stats["captured"] += 1
            self._last = frame.t_capture
            try:
                self._q.put_nowait(frame)
            except queue.Full:
                try:
                    self._q.get_nowait()  # fresh frames matter more than old ones
                    self.stats["dropped"] += 1
                except queue.Empty:
                    pass
                self._q.put_nowait(frame)

    def _read(self) -> None:
        try:
            self.stats["status"] = "running"
            if self.kind in ("device", "gstreamer", "url", "pipe"):
                self._read_capture()
            else:
                self._read_paced()
            if self.stats["status"] == "running":
                self.stats["status"], self.stats["reason"] = (("stopped", "closed by the consumer") if
                                                              self._stop.is_set() else ("ended", "end of source"))
        except Exception as e:  # noqa: BLE001 - reported to the consumer, never swallowed
            self.stats["status"], self.stats["reason"] = "error", f"{type(e).__name__}: {e}"
        finally:
            self._done.set()

    def _open_capture(self) -> cv2.VideoCapture:
        spec = self.spec
        if self.kind == "device":
            return cv2.VideoCapture(int(spec)) if str(spec).isdigit() else cv2.VideoCapture(str(spec), cv2.CAP_V4L2)
        if self.kind == "gstreamer":
            return cv2.VideoCapture(str(spec), cv2.CAP_GSTREAMER)
        if self.kind == "pipe" and _OPTIONS not in os.environ:
            # FFmpeg would otherwise buffer megabytes of a live pipe before the first frame; the
            # option is read when the capture opens, so it is set only around this open
            with _ENV_LOCK:
                os.environ[_OPTIONS] = LOW_LATENCY
                try:
                    return cv2.VideoCapture(str(spec), cv2.CAP_FFMPEG)
                finally:
                    os.environ.pop(_OPTIONS, None)
        return cv2.VideoCapture(str(spec), cv2.CAP_FFMPEG)

    def _read_capture(self) -> None:
        cap = self._open_capture()
        try:
            if not cap.isOpened():
                self.stats["status"], self.stats["reason"] = "error", f"cannot open {self.kind} {self.spec!r}"
                return
            # MJPEG from FFmpeg (a pipe, a stream): raw packets through the one image decoder, as for
            # files (btseg.runtime.video): FFmpeg silently rescales a frame whose size changed
            raw = (self.kind in ("pipe", "url") and fourcc(cap) in MJPEG and cap.set(cv2.CAP_PROP_FORMAT, -1))
            i, size = 0, None
            while not self._stop.is_set():
                ok, img = cap.read()
                if not ok:
                    return
                if raw:
                    try:
                        img = rgb3(decode_bytes(img.tobytes(), f"{self.name} frame {i}", None,
                                                size and (size[1], size[0])))
                    except DataError as e:
                        if SIZE_CHANGE in str(e):  # an error of the stream, never a silent resize
                            raise
                        self.stats["frame_errors"] = self.stats.get("frame_errors", 0) + 1
                        self.stats["last_frame_error"] = str(e)
                        i += 1
                        continue
                size = size or img.shape[:2]
                if img.shape[:2] != size:  # an error, never a silent resize
                    raise DataError(f"{self.name} frame {i}: frame is {img.shape[1]}x{img.shape[0]}, the stream is "
                                    f"{size[1]}x{size[0]}; {SIZE_CHANGE}")
                rgb = img if raw else cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img
                self._push(LiveFrame(rgb, None, self.name, i, t_capture=time.perf_counter()))
                i += 1
        finally:
            cap.release()

    def _file_frames(self) -> Iterator[Frame]:
        if self.kind in ("dicom", "video"):
            return self._good(iter_frames(self.spec, self.allow, errors="yield"))
        return (f if isinstance(f, Frame) else Frame(check_image(f), None, "frames", i)
                for i, f in enumerate(self.spec))

    def _good(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """A file's readable frames; a missing or corrupt one is skipped, counted in
        ``stats["frame_errors"]`` and named in ``stats["last_frame_error"]``."""
        for f in frames:
            if f.error:
                self.stats["frame_errors"] = self.stats.get("frame_errors", 0) + 1
                self.stats["last_frame_error"] = f.error
            else:
                yield f

    def _rate(self) -> float:
        if self.fps:
            return float(self.fps)
        if self.kind == "video":
            cap = cv2.VideoCapture(str(self.spec))
            rate = cap.get(cv2.CAP_PROP_FPS)
            cap.release()
            return rate if 0 < rate < 1000 else 30.0
        return 30.0

    def _read_paced(self) -> None:
        period, t_next, i = 1.0 / self._rate(), None, 0
        items = list(self.spec) if self.kind == "frames" and self.loop else None
        while not self._stop.is_set():
            frames = self._file_frames() if items is None else iter(items)
            n = 0
            for f in frames:
                if self._stop.is_set():
                    return
                t_next = (t_next or time.perf_counter()) + period
                self._push(LiveFrame(f.image, f.spacing_mm, f.source, i, f.dicom, t_capture=time.perf_counter()))
                i, n = i + 1, n + 1
                time.sleep(max(0.0, t_next - time.perf_counter()))
            if not self.loop or n == 0:
                return

    # -- consumer -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[LiveFrame]:
        """The newest waiting frames until the source ends, stalls or fails (see :attr:`stats`)."""
        while True:
            try:
                frame = self._q.get(timeout=min(0.05, self.timeout))
            except queue.Empty:
                if self._done.is_set() and self._q.empty():
                    return
                # decided under the reader's lock, with the queue empty: a frame pushed between the
                # timed-out get and this check is delivered, not left uncounted (captured ==
                # delivered + dropped holds for a stalled source too)
                with self._lock:
                    limit = self.timeout if self.stats["captured"] else self.start_timeout
                    stalled = (time.perf_counter() - self._last > limit and not self._done.is_set()
                               and self._q.empty())
                    if stalled:
                        self.stats["status"] = "stalled"
                        self.stats["reason"] = f"no frame for {limit:g} s" + ("" if self.stats["captured"] else
                                                                             " after opening")
                        self._stop.set()
                if stalled:
                    return
                continue
            self.stats["delivered"] += 1
            yield frame

    def close(self) -> None:
        """Stop reading; a reader blocked inside the source is left to return on its own."""
        self._stop.set()
        self._thread.join(timeout=min(1.0, self.timeout))
        self.stats["reader_alive"] = self._thread.is_alive()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(spec: Any, **options: Any) -> FrameSource:
    """:class:`FrameSource` for ``spec`` (see the module docstring for what ``spec`` may be)."""
    return FrameSource(spec, **options)
