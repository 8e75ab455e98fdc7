"""Transactional package writes: lock, rollback, stale staging, modes, disk full, SIGTERM,
artifacts of other weights, the installed assets.  Real exports (torch -> ONNX -> OpenVINO)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from btseg import defaults
from btseg.preprocess import PreprocessSpec
from btseg.errors import ArtifactError, ConfigError
from btseg.export import run_export
from btseg.models import create_model
from btseg.package import ModelConfig, load_package, save_package
from btseg.package_check import check_package

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _make(root: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_package(root, create_model("simplified_unet", widths=[8, 16, 32]),
                 ModelConfig("simplified_unet", {"widths": [8, 16, 32]}, preprocess=PreprocessSpec(size=(32, 32))))
    return root


@pytest.fixture(scope="module")
def tiny_exported(tmp_path_factory) -> Path:
    """A tiny package with onnx/fp32 + openvino/fp32 (no verification: speed; not under test here)."""
    root = _make(tmp_path_factory.mktemp("integ") / "pkg", seed=0)
    run_export(root, ["onnx", "openvino"], ["fp32"], verify=False)
    return root


@pytest.fixture
def pkg(tiny_exported, tmp_path) -> Path:
    dst = tmp_path / "pkg"
    shutil.copytree(tiny_exported, dst)
    return dst


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


CLI = "import sys; from btseg.cli.export import main; sys.argv[0] = 'btseg-export'; main()"


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                          env=ENV, timeout=300, **kw)


def test_modes_are_0755_and_0644(tiny_exported):
    ir = tiny_exported / "openvino-fp32"
    assert stat.S_IMODE(ir.stat().st_mode) == 0o755
    for p in [tiny_exported / "student-fp32.onnx", tiny_exported / "manifest.json", *ir.iterdir()]:
        assert stat.S_IMODE(p.stat().st_mode) & 0o777 == 0o644, p


def test_failed_manifest_write_rolls_back_the_installed_artifact(pkg, monkeypatch):
    before = _snapshot(pkg)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(pkg / "manifest.json"))

    monkeypatch.setattr("btseg.package.write_json", full)
    with pytest.raises(ArtifactError, match="manifest.json: cannot write .No space left on device"):
        run_export(pkg, ["onnx", "openvino"], ["fp32"], input_size=(64, 64), verify=False)  # new bytes
    assert _snapshot(pkg) == before, "the old artifacts and manifest must be exactly as they were"
    assert check_package(pkg).ok
    assert not list(pkg.glob(".export-staging-*"))


def test_other_weights_exported_over_a_package_remove_its_stale_artifacts_and_staging(pkg, tmp_path):
    """``btseg-export A --out B``: B's artifacts of its old weights go; so do killed runs' leftovers."""
    (pkg / ".export-staging-99999-1").mkdir()
    (pkg / ".export-staging-99999-1" / "fp32.onnx").write_bytes(b"half")
    (pkg / ".student-fp32.x1y2.tmp.onnx").write_bytes(b"half")
    assert check_package(pkg).warnings
    other = _make(tmp_path / "other", seed=1)
    run_export(other, ["onnx"], ["fp32"], out=pkg, verify=False)
    assert not [p.name for p in pkg.iterdir() if p.name.startswith(".")]
    ids = [a.id for a in load_package(pkg).artifacts()]
    assert ids == ["onnx-fp32"] and not (pkg / "openvino-fp32").exists()
    assert load_package(pkg).config.weights_sha256 == load_package(other).config.weights_sha256
    assert check_package(pkg).ok


def test_out_into_the_installed_assets_is_refused(pkg):
    before = _snapshot(defaults.ASSETS) if defaults.ASSETS.is_dir() else {}
    r = _cli(str(pkg), "--out", str(defaults.DEFAULT_PACKAGE), "--no-verify")
    assert r.returncode == 2 and "refusing to write into the installed bundled assets" in r.stderr, r.stderr
    for src, out in ((pkg, defaults.ASSETS), (pkg, defaults.ASSETS / "x"), (defaults.DEFAULT_PACKAGE, None)):
        with pytest.raises(ConfigError, match="installed bundled assets"):
            run_export(src, ["onnx"], ["fp32"], verify=False, out=out)
    assert (_snapshot(defaults.ASSETS) if defaults.ASSETS.is_dir() else {}) == before
    assert not (defaults.ASSETS / "x").exists()


def test_full_disk_gives_an_error_line_and_no_partial_files(pkg):
    before = _snapshot(pkg)
    # ulimit -f 64 KiB: the ONNX file (and the manifest) cannot be written
    limit = lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_FSIZE, (65536, 65536))  # noqa: E731
    (pkg / "student-fp32.onnx").unlink()
    shutil.rmtree(pkg / "openvino-fp32")
    (pkg / "manifest.json").unlink()
    before = _snapshot(pkg)
    r = _cli(str(pkg), "--target", "onnx", "--no-verify", preexec_fn=limit)
    assert r.returncode == 2, r.stderr
    assert "error:" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "File too large" in r.stderr or "cannot write" in r.stderr, r.stderr
    assert _snapshot(pkg) == before and not list(pkg.glob(".export-staging-*"))


def _export_then_signal(pkg: Path, delay: float, sig: int = signal.SIGTERM, code: str = CLI,
                        args: tuple[str, ...] = ("--target", "onnx", "--target", "openvino", "--no-verify"),
                        ready: Path | None = None) -> tuple[int | None, str]:
    """Start an export, wait until ``ready`` (default: its staging directory) exists, wait
    ``delay`` s more and send ``sig``; returns (exit code, or None if it had already ended; stderr)."""
    proc = subprocess.Popen([sys.executable, "-c", code, str(pkg), *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    seen = (lambda: ready.exists()) if ready else (lambda: bool(list(pkg.glob(".export-staging-*"))))  # noqa: E731
    while time.time() < deadline and not seen() and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        return None, proc.stderr.read()
    proc.send_signal(sig)
    return proc.wait(60), proc.stderr.read()


def test_a_signal_at_any_point_stops_the_export_and_leaves_only_whole_steps(pkg, tmp_path):
    """SIGTERM/SIGINT at several points of an ONNX + OpenVINO export (fault injection).  The
    old handler raised SystemExit into library code: inside torch.export it was swallowed
    (the exporter fell back to TorchScript and the run exited 0) and once it aborted (-6)."""
    for i, (delay, sig) in enumerate([(0.0, signal.SIGTERM), (1.0, signal.SIGINT), (2.5, signal.SIGTERM),
                                      (4.0, signal.SIGTERM)]):
        work = Path(shutil.copytree(pkg, tmp_path / f"p{i}"))
        rc, err = _export_then_signal(work, delay, sig)
        if rc in (None, 0):  # the export finished before the signal (or was tearing down): it succeeded
            assert check_package(work).ok, err
            continue
        assert rc == 128 + sig, (delay, sig, rc, err)
        assert "stopped by signal" in err and "Traceback" not in err, err
        assert not list(work.glob(".export-staging-*")), delay
        assert check_package(work).ok, (delay, check_package(work).errors)


def test_a_signal_while_a_finished_export_tears_down_is_not_a_kill(pkg):
    """The results table is printed, the interpreter is exiting: CPython resets Python signal
    handlers and OpenVINO/torch teardown runs on for about a second.  A SIGTERM then killed the
    finished export (-15, seen in CI); now it exits 0 (or 143 with its line, if the signal
    lands before the exit hooks), never by the default action, and the package is whole."""
    for delay in (0.3, 1.0):
        proc = subprocess.Popen([sys.executable, "-u", "-c", CLI, str(pkg), "--target", "onnx", "--target", "openvino",
                                 "--no-verify"], env={**ENV, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        for line in proc.stdout:  # the openvino row is the table's last: the export's work is done
            if "│ openvino" in line:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()
        rc, err = proc.wait(60), proc.stderr.read()
        assert rc in (0, 128 + signal.SIGTERM), (delay, rc, err)
        assert rc == 0 or "stopped by signal" in err, err
        assert check_package(pkg).ok, check_package(pkg).errors


SIGNAL_IN_INSTALL = textwrap.dedent("""
    import sys, time, signal
    from pathlib import Path
    import btseg.package as P
    from btseg.export import interrupt
    real = P.write_json
    def slow(path, obj):  # the manifest write of the install step takes 3 s; say when it starts
        Path(sys.argv[1], "writing").touch()
        time.sleep(3)
        real(path, obj)
    P.write_json = slow
    signal.signal(signal.SIGTERM, interrupt.on_signal)
    from btseg.export import run_export
    run_export(sys.argv[1], ["onnx"], ["fp32"], verify=False)
""")


def test_a_signal_during_the_install_step_waits_for_it(pkg):
    """SIGTERM while the artifact's manifest record is being written: the install completes
    (or would roll back) first, then the process stops with 143; the package is whole."""
    (pkg / "manifest.json").unlink()
    shutil.rmtree(pkg / "openvino-fp32")
    (pkg / "student-fp32.onnx").unlink()
    rc, err = _export_then_signal(pkg, 0.5, code=SIGNAL_IN_INSTALL, args=(), ready=pkg / "writing")
    assert rc == 128 + signal.SIGTERM, err
    (pkg / "writing").unlink()
    assert [a.id for a in load_package(pkg).artifacts()] == ["onnx-fp32"]
    assert check_package(pkg).ok and not list(pkg.glob(".export-staging-*"))


SLOW_WRITER = textwrap.dedent("""
    import sys, time
    import btseg.package as P
    from btseg.export import run_export
    real = P.write_json
    def slow(path, obj):  # a slow-fsync filesystem: the read-modify-write window is 3 s wide
        time.sleep(3)
        real(path, obj)
    P.write_json = slow
    run_export(sys.argv[1], [sys.argv[2]], ["fp32"], verify=False)
""")


def test_concurrent_exports_lose_no_manifest_entry(pkg):
    (pkg / "manifest.json").unlink()
    shutil.rmtree(pkg / "openvino-fp32")
    (pkg / "student-fp32.onnx").unlink()
    procs = [subprocess.Popen([sys.executable, "-c", SLOW_WRITER, str(pkg), t], env=ENV, stderr=subprocess.PIPE,
                              text=True) for t in ("onnx", "openvino")]
    for p in procs:
        assert p.wait(300) == 0, p.stderr.read()
    assert sorted(a.id for a in load_package(pkg).artifacts()) == ["onnx-fp32", "openvino-fp32"]
    assert check_package(pkg).ok


def test_export_into_a_package_with_a_tampered_manifest_is_refused(pkg):
    doc = json.loads((pkg / "manifest.json").read_text())
    doc["artifacts"][0]["preprocess"]["std"] = 0.0
    (pkg / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ArtifactError, match=r"artifacts\[0\].preprocess.std = 0.0"):
        run_export(pkg, ["onnx"], ["fp32"], verify=False)
