"""Live sources: a video file, a looping video, a DICOM cine, and a fake capture device made
of a named pipe fed with MJPEG by a writer thread that then stalls.  Real OpenCV/FFmpeg
reads, real threads; nothing of the runtime is mocked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from btseg.errors import BackendUnavailableError, DataError, ModalityError
from btseg.runtime.sources import FrameSource, _has_gstreamer, source_kind
from dicom_util import write_dicom

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cart_loop.py"


def write_video(path: Path, n: int, size=(64, 48)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8))
    w.release()
    return path


class MjpegPipe:
    """A fake capture device: a FIFO fed with JPEG frames, then silent while held open."""

    def __init__(self, path: Path, frames: int, fps: float = 50.0) -> None:
        os.mkfifo(path)
        self.path, self.frames, self.period = path, frames, 1.0 / fps
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        with open(self.path, "wb") as f:  # blocks until the reader opens the pipe
            for i in range(self.frames):
                img = np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8)
                f.write(cv2.imencode(".jpg", img)[1].tobytes())
                f.flush()
                time.sleep(self.period)
            self.release.wait(60)  # the stall: the device stays open and sends nothing

    def close(self) -> None:
        self.release.set()
        self.thread.join(5)


def test_source_kinds(tmp_path):
    assert source_kind(0) == source_kind("2") == source_kind("/dev/video7") == "device"
    assert source_kind("rtsp://cart/stream") == "url" and source_kind("videotestsrc ! appsink") == "gstreamer"
    assert source_kind(write_video(tmp_path / "a.avi", 2)) == "video" and source_kind([np.zeros((4, 4))]) == "frames"
    with pytest.raises(DataError, match="source not found"):
        source_kind(tmp_path / "missing.avi")


def test_video_file_plays_to_its_end(tmp_path):
    with FrameSource(write_video(tmp_path / "clip.avi", 12), fps=500) as src:
        frames = list(src)
    assert src.stats["status"] == "ended" and src.stats["captured"] == 12
    assert len(frames) + src.stats["dropped"] == 12 and frames[-1].index == 11
    assert frames[0].image.shape == (48, 64, 3) and frames[0].t_capture > 0


def test_slow_consumer_drops_the_oldest_and_counts(tmp_path):
    with FrameSource(write_video(tmp_path / "clip.avi", 40), depth=2, fps=200) as src:
        seen = []
        for f in src:
            seen.append(f.index)
            time.sleep(0.03)  # a segmenter slower than the source
    st = src.stats
    assert st["status"] == "ended" and st["dropped"] > 0 and st["delivered"] + st["dropped"] == st["captured"] == 40
    assert seen == sorted(seen) and seen[-1] == 39, "the newest frame is never the one dropped"


def test_looping_video_runs_until_closed(tmp_path):
    src = FrameSource(write_video(tmp_path / "clip.avi", 5), fps=300, loop=True)
    got = [f.index for _, f in zip(range(25), src)]
    src.close()
    assert len(got) == 25 and got[-1] >= 24 and src.stats["status"] in ("running", "stopped")


def test_named_pipe_device_that_stalls_is_reported_not_hung_on(tmp_path):
    pipe = MjpegPipe(tmp_path / "grabber", frames=30)
    try:
        t0 = time.perf_counter()
        src = FrameSource(str(pipe.path), timeout=1.0, start_timeout=20)
        frames = list(src)
        waited = time.perf_counter() - t0
        src.close()
    finally:
        pipe.close()
    assert src.kind == "pipe" and src.stats["status"] == "stalled" and "no frame for 1 s" in src.stats["reason"]
    assert 20 <= src.stats["captured"] <= 30 and len(frames) + src.stats["dropped"] == src.stats["captured"]
    assert frames[0].image.shape == (48, 64, 3) and waited < 30


def test_pipe_with_no_writer_stalls_at_open(tmp_path):
    os.mkfifo(tmp_path / "silent")
    src = FrameSource(str(tmp_path / "silent"), timeout=0.2, start_timeout=0.5)
    assert list(src) == [] and src.stats["status"] == "stalled" and "after opening" in src.stats["reason"]
    src.close()
    with open(tmp_path / "silent", "wb"):  # let the blocked open() return so the reader thread ends
        pass


def test_missing_device_is_an_error_status():
    src = FrameSource("/dev/video99", timeout=0.5, start_timeout=5)
    assert list(src) == [] and src.stats["status"] == "error" and "cannot open device" in src.stats["reason"]


@pytest.mark.skipif(_has_gstreamer(), reason="this OpenCV has GStreamer")
def test_gstreamer_without_support_is_a_typed_error():
    with pytest.raises(BackendUnavailableError, match="without GStreamer"):
        FrameSource("videotestsrc ! videoconvert ! appsink")


def test_dicom_cine_source_keeps_regions_and_checks_modality(tmp_path):
    cine = np.stack([np.full((40, 50), 10 * i, np.uint8) for i in range(6)])
    region = {"RegionSpatialFormat": 1, "RegionDataType": 1, "RegionLocationMinX0": 2, "RegionLocationMinY0": 2,
              "RegionLocationMaxX1": 45, "RegionLocationMaxY1": 35, "PhysicalUnitsXDirection": 3,
              "PhysicalUnitsYDirection": 3, "PhysicalDeltaX": 0.01, "PhysicalDeltaY": 0.01}
    with FrameSource(write_dicom(tmp_path / "cine.dcm", cine, regions=[region]), fps=300, depth=8) as src:
        frames = list(src)
    assert len(frames) == 6 and frames[3].dicom.regions[0].box == (2, 2, 44, 34)
    with pytest.raises(ModalityError, match="'CT'"):
        FrameSource(write_dicom(tmp_path / "ct.dcm", cine, modality="CT"))


def _cart_loop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLE), "--threads", "1", *args], capture_output=True, text=True,
                          timeout=240)


def test_cart_loop_from_a_video_file_and_from_a_stalling_device(tmp_path):
    r = _cart_loop("--input", str(write_video(tmp_path / "clip.avi", 30, (160, 120))), "--fps", "60")
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"ended \(end of source\)\ncaptured (\d+) frames, segmented (\d+), dropped (\d+)", r.stdout)
    assert m and int(m[1]) == int(m[2]) + int(m[3]) and int(m[1]) >= 29, r.stdout
    pipe = MjpegPipe(tmp_path / "grabber", frames=40, fps=60)
    try:
        r = _cart_loop("--input", str(pipe.path), "--timeout", "1")
    finally:
        pipe.close()
    assert r.returncode == 0, r.stderr[-2000:]
    assert "source pipe" in r.stdout and "stalled (no frame for 1 s)" in r.stdout and "dropped" in r.stdout


def test_readme_cart_integration_runs(tmp_path, tiny_package):
    """The README's ten lines, on a screen-capture video instead of /dev/video0."""
    from screen_util import make_capture

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("### A cart integration in ten lines")[1].split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) <= 10
    screen, truth, _ = make_capture(3)
    video = tmp_path / "screen.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, screen.shape[1::-1])
    for i in range(6):
        w.write(np.roll(screen, i, axis=1)[..., ::-1])
    w.release()
    shown = []
    code = code.replace('"/dev/video0"', repr(str(video))).replace('"runs/demo/student"', repr(str(tiny_package)))
    exec(compile(code, "README.md", "exec"), {"show": lambda img, mask, mm2: shown.append((mask, mm2))})
    # the frames are shifted by up to 5 px and the roi is found on the first one consumed
    assert len(shown) >= 1 and all(m.shape == truth.shape and not (m & ~truth).sum() > 0.08 * truth.sum()
                                   for m, _ in shown)


def test_url_source_over_http(tmp_path):
    """A stream URL read by OpenCV's FFmpeg from a local HTTP server (no network needed)."""
    import functools
    import http.server

    write_video(tmp_path / "clip.avi", 10)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with FrameSource(f"http://127.0.0.1:{server.server_address[1]}/clip.avi", depth=16, timeout=2) as src:
            frames = list(src)
    finally:
        server.shutdown()
    assert src.kind == "url" and src.stats["status"] == "ended" and src.stats["captured"] == 10
    assert len(frames) + src.stats["dropped"] == 10 and frames[0].image.shape == (48, 64, 3)
    with FrameSource("http://127.0.0.1:9/none.avi", timeout=0.5, start_timeout=10) as bad:  # nothing listens
        assert list(bad) == []
    assert bad.stats["status"] in ("error", "stalled")
