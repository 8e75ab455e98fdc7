"""btseg-predict outputs under concurrency and interruption (btseg.cli.predict_journal).

Fault injection, real runs: a second run into a locked --out, a disk that fills after N
files (the writer raising ENOSPC), SIGTERM mid-batch (subprocess), a crash that left a
journal with unfinished files, an unwritable --out.  After each: no orphan (every mask has
its record and every record its files), no temporary file, and the rerun completes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from btseg.cli import predict as P
from btseg.cli.predict_journal import JOURNAL, OutputRun

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def inputs(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        cv2.imwrite(str(d / f"scan{i:02d}.png"), rng.integers(0, 255, (64, 64), dtype=np.uint8))
    return d


def _run(*args):
    return CliRunner().invoke(P.main, [*map(str, args), "--threads", "1"], catch_exceptions=False)


def assert_consistent(out: Path, expect: int | None = None) -> None:
    """Every record lists files that exist with its sha256s; every mask/overlay is listed by
    a record; no temporary file, no journal."""
    from btseg.io import sha256_file

    listed = set()
    for rec_path in out.glob("*.json"):
        rec = json.loads(rec_path.read_text())
        for name, sha in rec["files"].items():
            assert sha256_file(out / name) == sha, name
            listed.add(name)
    pngs = {p.name for p in out.glob("*.png")}
    assert pngs == listed, f"orphans: {pngs - listed}, missing: {listed - pngs}"
    assert not [p for p in out.iterdir() if ".tmp" in p.name], list(out.iterdir())
    assert not (out / JOURNAL).exists()
    if expect is not None:
        assert len(list(out.glob("*.json"))) == expect


def test_a_second_run_into_a_locked_out_is_refused_with_one_line(inputs, tmp_path):
    out = tmp_path / "out"
    with OutputRun(out):
        res = _run(inputs, "--out", out)
    assert res.exit_code == 2 and f"pid {os.getpid()}" in res.output and "another btseg-predict run" in res.output
    assert "Traceback" not in res.output and not list(out.glob("*.png"))
    assert _run(inputs, "--out", out).exit_code == 0  # the lock went with its holder
    assert_consistent(out, 12)


def test_two_concurrent_processes_never_both_write(inputs, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "btseg.cli.predict", str(inputs), "--out", str(out), "--threads", "1"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(180), p.stderr.read() + p.stdout.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    # one run wrote everything; the other was refused by the lock (or, started after it ended,
    # by the never-overwrite policy): never two runs writing beside each other
    assert codes == [0, 2], results
    assert_consistent(out, 12)


def test_disk_full_after_n_files_leaves_no_orphan_and_overwrite_completes(inputs, tmp_path, monkeypatch):
    out = tmp_path / "out"
    from btseg.cli import predict_write as W

    real, calls = W.write_png, [0]

    def full(target, image):
        calls[0] += 1
        if calls[0] > 7:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(target, image)
    monkeypatch.setattr(W, "write_png", full)
    res = _run(inputs, "--out", out)
    assert res.exit_code == 1 and "No space left on device" in res.output
    assert_consistent(out)  # 3 whole frames (mask + overlay + record), nothing of the 4th
    assert len(list(out.glob("*.json"))) == 3
    monkeypatch.setattr(W, "write_png", real)
    assert _run(inputs, "--out", out).exit_code == 2  # the whole ones exist: not overwritten without a flag
    res = _run(inputs, "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert_consistent(out, 12)


def test_resume_skips_complete_images_and_runs_the_rest(inputs, tmp_path):
    out = tmp_path / "out"
    assert _run(inputs / "scan00.png", inputs / "scan01.png", "--out", out).exit_code == 0
    before = (out / "scan00_mask.png").stat().st_mtime_ns
    res = _run(inputs, "--out", out, "--resume")
    assert res.exit_code == 0 and "2 input(s) already complete" in res.output, res.output
    assert (out / "scan00_mask.png").stat().st_mtime_ns == before
    assert_consistent(out, 12)


def test_a_crashed_runs_unfinished_files_are_removed_by_the_next_run(inputs, tmp_path):
    out = tmp_path / "out"
    assert _run(inputs / "scan00.png", "--out", out).exit_code == 0
    # what SIGKILL mid-frame leaves: a mask without its record, a temp file, the journal
    (out / "scan05_mask.png").write_bytes(b"half")
    (out / ".scan05_overlay.abc123.tmp.png").write_bytes(b"partial")
    (out / JOURNAL).write_text(json.dumps({"pid": 1}) + "\n" + "".join(
        json.dumps({"begin": n}) + "\n" for n in ("scan05_mask.png", "scan05_overlay.png", "scan05.json")) + '{"beg')
    res = _run(inputs, "--out", out, "--resume")
    assert res.exit_code == 0 and "removed 1 unfinished output(s)" in res.output, res.output
    assert_consistent(out, 12)


def test_recovery_never_removes_what_that_run_did_not_write(tmp_path):
    from btseg.cli.predict_journal import recover

    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (outside / "keep.png").write_bytes(b"precious")
    (out / "link").symlink_to(outside)
    old = out / "scan.png"  # e.g. an input in a folder used as its own --out
    old.write_bytes(b"input")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    entries = [{"begin": "../outside/keep.png"}, {"begin": "link/keep.png"}, {"begin": "scan.png", "t": time.time()}]
    (out / JOURNAL).write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert recover(out) == []
    assert (outside / "keep.png").read_bytes() == b"precious" and old.read_bytes() == b"input"
    assert not (out / JOURNAL).exists()


def test_sigterm_mid_batch_leaves_no_orphan_and_resume_completes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(60):
        cv2.imwrite(str(src / f"s{i:03d}.png"), rng.integers(0, 255, (256, 256), dtype=np.uint8))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "btseg.cli.predict", str(src), "--out", str(out), "--threads", "1",
                             "--streams", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("*.json"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    err = proc.stderr.read()
    assert rc == 143 and "Traceback" not in err, err
    done = len(list(out.glob("*.json")))
    assert 3 <= done < 60
    assert_consistent(out)
    res = _run(src, "--out", out, "--resume")
    assert res.exit_code == 0 and f"{done} input(s) already complete" in res.output, res.output
    assert_consistent(out, 60)


def test_an_unwritable_out_is_exit_2_before_the_model_loads(inputs, tmp_path, monkeypatch):
    from btseg.runtime import segmenter

    def never(*a, **k):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr(segmenter.Segmenter, "load", never)
    for bad in (Path("/proc/btseg-out"), Path("/proc/self/btseg-out")):
        res = _run(inputs, "--out", bad)
        assert res.exit_code == 2 and res.output.startswith("error: --out"), res.output
    if os.geteuid() != 0:  # root writes through a 0o555 folder
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        res = _run(inputs, "--out", ro)
        assert res.exit_code == 2 and "not writable" in res.output, res.output
