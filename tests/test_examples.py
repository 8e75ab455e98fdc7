"""examples/cart_loop.py runs as documented (the embedding example must not rot)."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cart_loop.py"


def test_cart_loop_runs_on_synthetic_frames():
    r = subprocess.run([sys.executable, str(EXAMPLE), "--frames", "20", "--threads", "1"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "captured 20 frames" in r.stdout and "p90" in r.stdout


def test_cart_loop_missing_input_is_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLE), "--input", str(tmp_path / "nosuch.avi"), "--threads", "1"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nosuch.avi'}")


def test_cart_loop_ctrl_c_on_a_looping_file_still_reports(tmp_path):
    import signal

    import cv2
    import numpy as np

    video = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, (128, 96))
    rng = np.random.default_rng(0)
    for _ in range(10):
        w.write(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    w.release()
    p = subprocess.Popen([sys.executable, str(EXAMPLE), "--input", str(video), "--loop", "--threads", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stderr.readline()  # printed once the loop runs
        assert line.startswith("running on"), line
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    assert p.returncode == 0 and "Traceback" not in err, err
    assert "stopped (Ctrl-C)" in out and "captured" in out and "p90" in out
