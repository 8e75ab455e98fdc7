"""btseg-distill end to end on the tiny preset and its one-line errors (DDP: test_distill_ddp.py)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from btseg.cli.distill import main
from btseg.package import load_package


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


def test_skip_bad_trains_and_records_the_skipped_items(tmp_path):
    from btseg.data.phantom import synthesize
    from btseg.data.splits import Splits

    s = synthesize(tmp_path / "messy", n=24, size=64, seed=0, workers=1, defects="all")
    bad = {f for d in s["defects"] if d["bad"] for f in d["files"]}
    out = tmp_path / "run"
    args = ["all", "--data", str(tmp_path / "messy"), "--preset", "tiny", "--out", str(out), "--no-progress",
            "--device", "cpu"]
    r = CliRunner().invoke(main, args)  # default: refuse, naming every bad item, nothing written
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.output
    assert all(f.split("/")[-1] in r.stderr for f in bad) and not (out / "splits.json").exists()
    r = CliRunner().invoke(main, args + ["--skip-bad"])
    assert r.exit_code == 0, r.output
    assert all(r.stderr.count(f.split("/")[-1] + ":") == 1 for f in bad)  # each named once
    assert {d["file"] for d in Splits.load(out / "splits.json").dataset["skipped"]} == bad
    for name in ("teacher-benign", "student"):
        skipped = load_package(out / name).config.data["skipped"]
        assert {d["file"] for d in skipped} == bad and all(d["reason"] for d in skipped)
    # cv and eval open the data set the same way: refused with every bad item named
    for sub in (["cv", "--data", str(tmp_path / "messy"), "--preset", "tiny", "--out", str(tmp_path / "cv")],
                ["eval", str(out / "student"), "--data", str(tmp_path / "messy")]):
        r = CliRunner().invoke(main, sub)
        assert r.exit_code == 2 and all(f.split("/")[-1] in r.stderr for f in bad), (sub, r.output)


def test_presence_head_trains_from_the_cli_and_is_recorded(phantom_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["student", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--kd", "none", "--presence-head", "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    pkg = load_package(out / "student")
    assert pkg.config.kwargs["presence_head"] is True and pkg.build_model().presence_head
    r = CliRunner().invoke(main, ["student", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--kd", "none", "--presence-head", "--arch", "unext", "--name", "x"])
    assert r.exit_code == 2 and "presence_head" in r.stderr and r.stderr.count("\n") == 1
