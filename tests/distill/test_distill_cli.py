"""btseg-distill end to end on the tiny preset, its one-line errors, and a 2-process DDP run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from btseg.cli.distill import main
from btseg.package import load_package


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_writes_three_packages_and_eval_reads_one(phantom_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["all", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    for name in ("teacher-benign", "teacher-malignant", "student"):
        cfg = load_package(out / name).config
        assert cfg.preset == "tiny" and "test" in cfg.metrics and cfg.training["seconds"] >= 0
    student = load_package(out / "student").config
    assert student.training["kd"] == "dual" and student.training["teachers"] == "routed"
    assert load_package(out / "teacher-benign").config.data["trained_on"] == ["benign", "normal"]
    assert (out / "splits.json").exists()
    r = CliRunner().invoke(main, ["eval", str(out / "student"), "--data", str(phantom_dir), "--split", "test"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["split"] == "test" and "hd95" in summary["overall"] and summary["per_class"]


@pytest.mark.parametrize("args, message", [
    (["--data", "/nonexistent/data"], "data directory not found"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--kd", "bogus"], "kd mode 'bogus'"),
    (["--teachers", "both"], "teachers 'both'"),
    (["--arch", "resnet"], "--arch 'resnet': unknown model"),
    (["--widths", "8,x"], "--widths '8,x'"),
])
def test_bad_input_exits_2_with_one_line(phantom_dir, tmp_path, args, message):
    base = {"--data": str(phantom_dir), "--preset": "tiny", "--out": str(tmp_path / "o")}
    base.update(dict(zip(args[::2], args[1::2])))
    r = CliRunner().invoke(main, ["student", *[x for kv in base.items() for x in kv]])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr


def test_a_baseline_trains_from_the_cli(phantom_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["student", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--kd", "none", "--arch", "unext", "--widths", "8,8,16,16,16",
                                  "--name", "baseline-unext", "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = load_package(out / "baseline-unext").config
    assert cfg.architecture == "unext" and cfg.kwargs["widths"] == [8, 8, 16, 16, 16] and cfg.role == "baseline"


def test_eval_of_a_missing_package_exits_2(phantom_dir, tmp_path):
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "nope"), "--data", str(phantom_dir)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1


def test_ddp_two_gloo_processes_write_one_package(phantom_dir, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "btseg.cli.distill", "student", "--kd", "none", "--data", str(phantom_dir),
           "--preset", "tiny", "--out", str(out), "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert sorted(x.name for x in out.iterdir()) == ["splits.json", "student"]
    cfg = load_package(out / "student").config
    assert cfg.training["world_size"] == 2 and cfg.metrics["test"]["n"] > 0
