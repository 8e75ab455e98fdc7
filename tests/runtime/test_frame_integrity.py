"""Issue 20, class 3: every cine / video frame is accounted for, declared vs decoded.

A missing or corrupt frame is an error of that frame (named), never segmented, and never
aborts a batch: ``iter_frames(errors="yield")`` goes on with the next frames and
``btseg-predict`` with the next inputs (exit 1).  On the old reader a JPEG cine with fewer
fragments than NumberOfFrames raised a bare RuntimeError (StopIteration) that aborted the
batch, a JPEG fragment cut short was decoded into a grey-filled frame, an AVI cut in half
gave 9 of 20 frames silently, and a frame-size change was resized silently.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg.cli.predict import main
from btseg.errors import DataError
from btseg.runtime.inputs import iter_frames
from dicom_util import write_jpeg_cine
from video_util import jpeg_bytes, write_mjpeg_avi

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _frames(n: int, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    from btseg.data.phantom import sample

    return [cv2.resize(sample(3, i, "benign", 64)[0], size[::-1]) for i in range(n)]


def _split(path):
    frames = list(iter_frames(path, errors="yield"))
    return frames, [f for f in frames if f.error is None], [f for f in frames if f.error]


def test_jpeg_cine_with_fewer_fragments_than_declared(tmp_path):
    path = write_jpeg_cine(tmp_path / "cine.dcm", _frames(5), declared=8)
    frames, good, bad = _split(path)
    assert [f.index for f in good] == [0, 1, 2, 3, 4] and [f.index for f in bad] == [5, 6, 7]
    assert all(f.declared == 8 for f in frames) and all(f.image.size == 0 for f in bad)
    assert "frame 5 of 8: missing" in bad[0].error and str(path) in bad[0].error
    with pytest.raises(DataError, match="frame 5 of 8"):  # the default: raise at the bad frame
        list(iter_frames(path))


@pytest.mark.parametrize("damage", ["cut", "cut+eoi", "junk", "not-jpeg"])
def test_corrupt_jpeg_fragment_is_that_frames_error(tmp_path, damage):
    frames = _frames(4)
    frags = [jpeg_bytes(f) for f in frames]
    b = frags[2]
    frags[2] = {"cut": b[:len(b) // 2], "cut+eoi": b[:len(b) // 2] + b"\xff\xd9",
                "junk": b[:len(b) // 2] + bytes(np.random.default_rng(0).integers(0, 256, len(b) // 2, np.uint8)),
                "not-jpeg": b"\x00" * len(b)}[damage]
    _, good, bad = _split(write_jpeg_cine(tmp_path / "c.dcm", frames, fragments=frags))
    assert [f.index for f in good] == [0, 1, 3] and [f.index for f in bad] == [2]
    assert "frame 2 of 4" in bad[0].error


@SETTINGS
@given(n_frags=st.integers(0, 6), declared=st.integers(1, 6))
def test_fragment_counts_property(tmp_path, n_frags, declared):
    frames = _frames(max(n_frags, 1))
    path = write_jpeg_cine(tmp_path / "p.dcm", frames[:max(n_frags, 1)], declared=declared,
                           fragments=[jpeg_bytes(f) for f in frames[:n_frags]] if n_frags else [b"\xff\xd8\xff\xd9"])
    try:
        all_, good, bad = _split(path)
    except DataError:  # refused as a whole, with a reason: acceptable, never another exception
        return
    assert len(all_) == declared and sorted(f.index or 0 for f in all_) == list(range(declared))
    assert len(good) == min(n_frags, declared) and all(f.error and f.image.size == 0 for f in bad)


def test_avi_cut_in_half_reports_the_missing_frames(tmp_path):
    path = tmp_path / "clip.avi"
    write_mjpeg_avi(path, _frames(20))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    frames, good, bad = _split(path)
    assert len(frames) == 20 and all(f.declared == 20 for f in frames)
    assert 0 < len(good) < 20 and len(bad) == 20 - len(good)
    assert "of 20 declared: missing" in bad[-1].error  # the first may be the frame the cut went through
    with pytest.raises(DataError, match=r"frame \d+"):
        list(iter_frames(path))


@SETTINGS
@given(cut=st.floats(0.05, 0.99), writer=st.sampled_from(["btseg", "opencv"]))
def test_video_truncation_property(tmp_path, cut, writer):
    path = tmp_path / "v.avi"
    if writer == "btseg":
        write_mjpeg_avi(path, _frames(12))
    else:
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
        for f in _frames(12):
            w.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
        w.release()
    data = path.read_bytes()
    path.write_bytes(data[:max(1, int(len(data) * cut))])
    try:
        frames, good, bad = _split(path)
    except DataError as e:  # cut before the first frame / inside the header
        assert str(path) in str(e)
        return
    assert len(frames) == 12 and len(good) + len(bad) == 12
    assert [f.index for f in frames] == list(range(12))


def test_frame_size_change_is_an_error_not_a_resize(tmp_path):
    frames = _frames(5) + _frames(3, (96, 80))
    frames_, good, bad = _split(write_mjpeg_avi(tmp_path / "sz.avi", frames))
    assert [f.index for f in good] == [0, 1, 2, 3, 4] and [f.index for f in bad] == [5, 6, 7]
    assert "frame is 80x96, the stream is 64x48" in bad[0].error


def test_predict_goes_on_after_bad_frames_and_reports_declared_vs_decoded(tmp_path, exported_package, image_dir):
    cine = write_jpeg_cine(tmp_path / "cine.dcm", _frames(3), declared=5)
    clip = tmp_path / "clip.avi"
    write_mjpeg_avi(clip, _frames(6))
    clip.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) * 2 // 3])
    png = sorted(image_dir.glob("*.png"))[0]
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [str(cine), str(clip), str(png), "--model", str(exported_package), "--out",
                                    str(out), "--threads", "1", "--no-overlay"], catch_exceptions=False)
    text = res.output.replace("\n", " ")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "1 of 3 inputs segmented, 2 failed" in text
    assert "2 of 5 declared frame(s) failed, 3 segmented" in text and "frame 3 of 5: missing" in text
    assert "3/5" in text  # the summary: done/declared
    assert (out / f"{png.stem}_mask.png").is_file()
    rec = json.loads((out / "cine_f0002.json").read_text())
    assert rec["frames_declared"] == 5 and not (out / "cine_f0003_mask.png").exists()
    assert rec["dicom"]["pixels"]["voi"] == "none"


def test_cart_source_skips_and_counts_bad_frames(tmp_path):
    from btseg.runtime.sources import FrameSource

    path = write_jpeg_cine(tmp_path / "cine.dcm", _frames(3), declared=5)
    with FrameSource(path, fps=200, depth=8) as src:
        got = [f.index for f in src]
    assert got == [0, 1, 2] and src.stats["status"] == "ended"
    assert src.stats["frame_errors"] == 2 and "frame 4 of 5: missing" in src.stats["last_frame_error"]


def test_jpeg_fragment_padded_after_its_end_marker_decodes(tmp_path):
    frames = _frames(2)
    frags = [jpeg_bytes(f) + b"\xff" for f in frames]  # padding after EOI, as some encoders write
    _, good, bad = _split(write_jpeg_cine(tmp_path / "pad.dcm", frames, fragments=frags))
    assert len(good) == 2 and not bad


def test_predict_json_lines_name_the_bad_frames(tmp_path, exported_package):
    cine = write_jpeg_cine(tmp_path / "cine.dcm", _frames(2), declared=3)
    res = CliRunner().invoke(main, [str(cine), "--model", str(exported_package), "--out", str(tmp_path / "o"),
                                    "--threads", "1", "--no-overlay", "--json"], catch_exceptions=False)
    assert res.exit_code == 1
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert [r["frame"] for r in lines] == [0, 1, 2] and all(r["frames_declared"] == 3 for r in lines)
    assert "error" not in lines[0] and "frame 2 of 3: missing" in lines[2]["error"]


def test_live_mjpeg_pipe_whose_frame_size_changes_is_an_error(tmp_path):
    """A grabber pipe (FFmpeg would rescale the 80x96 frames to 64x48 without a word)."""
    import os
    import threading

    from btseg.runtime.sources import FrameSource

    path = tmp_path / "grabber"
    os.mkfifo(path)
    frames = _frames(6) + _frames(4, (96, 80))

    def write() -> None:
        with open(path, "wb") as f:
            for img in frames:
                f.write(jpeg_bytes(img))
                f.flush()

    t = threading.Thread(target=write, daemon=True)
    t.start()
    with FrameSource(str(path), depth=16, timeout=5.0, start_timeout=20) as src:
        got = [f.image.shape for f in src]
    t.join(5)
    assert src.stats["status"] == "error" and "frame is 80x96, the stream is 64x48" in src.stats["reason"]
    assert got and all(s == (48, 64, 3) for s in got) and len(got) <= 6
