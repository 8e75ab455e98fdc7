"""Distilling every kind of student: ``--scale`` and a UNeXt student with dual (feature) KD."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from btseg.cli.distill import main
from btseg.contract import SCALES
from btseg.distill.losses import DistillObjective
from btseg.models import create_model
from btseg.package import load_package


def _log(pkg) -> list[dict]:
    return [json.loads(x) for x in (pkg / "train" / "log.jsonl").read_text().splitlines() if x.strip()]


def test_scale_n_distils_and_the_package_records_its_scale(phantom_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["all", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--scale", "n", "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = load_package(out / "student").config
    assert cfg.kwargs == {"widths": SCALES["simplified_unet"]["n"], "scale": "n"}
    assert cfg.training["kd"] == "dual"
    assert all(row["train_kd_feat"] > 0 for row in _log(out / "student"))
    assert load_package(out / "student").build_model().widths == SCALES["simplified_unet"]["n"]


@pytest.mark.parametrize("args, message", [
    (["--scale", "xl"], "valid scales: n, s, m, l"),
    (["--scale", "n", "--widths", "8,16,32"], "--scale n and --widths 8,16,32: give one"),
    (["--scale", "n", "--arch", "unext"], "unext: has no scales"),
])
def test_bad_scale_exits_2_with_one_line(phantom_dir, tmp_path, args, message):
    r = CliRunner().invoke(main, ["student", "--data", str(phantom_dir), "--preset", "tiny", "--out",
                                  str(tmp_path / "o"), *args])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr


@pytest.mark.parametrize("teacher_widths", [[8, 16, 32], [8, 16, 32, 64, 128], [8, 16, 32, 64, 128, 256]])
def test_unext_feature_adapters_pair_stages_of_the_same_resolution(teacher_widths):
    """UNeXt's decoder stages (1/32 .. 1) line up with any U-Net teacher's from the full-size end:
    each adapter maps a student stage to the teacher stage of the same size, never a resized one."""
    student = create_model("unext", widths=[4, 8, 16, 24, 32])
    teachers = [create_model("attention_unet", widths=teacher_widths) for _ in range(2)]
    obj = DistillObjective(student, teachers, "dual", "routed", 1.0, 1.0, 2.0)
    x = torch.randn(2, 1, 64, 64)
    _, s_feats = student.forward_features(x)
    _, t_feats = teachers[0].forward_features(x)
    n = len(obj.adapters.convs)
    assert n == min(len(s_feats), len(t_feats))
    for conv, fs, ft in zip(obj.adapters.convs, s_feats[-n:], t_feats[-n:]):
        assert (conv.in_channels, conv.out_channels) == (fs.shape[1], ft.shape[1])
        assert fs.shape[-2:] == ft.shape[-2:]
    loss, parts = obj(x, (torch.rand(2, 1, 64, 64) > 0.5).float(), torch.tensor([0, 2]))
    loss.backward()
    assert parts["kd_feat"] > 0 and all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0
                                        for c in obj.adapters.convs)


def test_unext_student_with_dual_kd_from_the_cli(phantom_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["all", "--data", str(phantom_dir), "--preset", "tiny", "--out", str(out),
                                  "--arch", "unext", "--widths", "4,8,16,24,32", "--kd", "dual",
                                  "--no-progress", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    cfg = load_package(out / "student").config
    assert cfg.architecture == "unext" and cfg.training["kd"] == "dual" and cfg.role == "student"
    rows = _log(out / "student")
    assert rows and all(row["train_kd_feat"] > 0 and row["train_kd_resp"] >= 0 for row in rows)
    # the adapters are training-only: the package holds the UNeXt alone and rebuilds from it
    assert not any(k.startswith("adapters") for k in load_package(out / "student").build_model().state_dict())
