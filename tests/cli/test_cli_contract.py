"""The CLI contract (docs/cli.md), table-driven across every console script.

1. Every command and subcommand accepts ``-h`` and ``--help`` (exit 0).
2. An option that cannot be honoured, or conflicts with another, is refused before any work:
   exit 2, one ``error:`` line naming the option, no traceback, nothing written.
3. A run in which nothing succeeded does not exit 0 (tested per command where it has inputs).

The command list comes from pyproject.toml's [project.scripts], so a new console script is
held to the contract without touching this file.
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _command(entry: str) -> click.Command:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_and_subcommand_accepts_help(name, flag):
    cmd = _command(SCRIPTS[name])  # a script whose module does not import fails here, by name
    subs = [[]] + ([[sub] for sub in sorted(cmd.commands)] if isinstance(cmd, click.Group) else [])
    for prefix in subs:
        r = CliRunner().invoke(cmd, [*prefix, flag])
        assert r.exit_code == 0 and "Usage:" in r.output, f"{name} {' '.join(prefix)} {flag}: {r.output}"


def _nonempty(tmp: Path) -> Path:
    d = tmp / "existing"
    d.mkdir()
    (d / "keep.txt").write_text("not btseg's")
    return d


def _torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _installed(backend: str) -> bool:
    from btseg.specs import BACKEND_SPECS

    return BACKEND_SPECS[backend].installed()


# (script, argv with {tmp} placeholders, a text the error line must contain, skip-when)
REFUSED = [
    ("btseg-predict", ["--backend", "torch", "--precision", "int8", "--out", "{tmp}/o"], "precision 'int8'", None),
    ("btseg-bench", ["--device", "cuda", "--no-peak"], "--device cuda", _torch_has_cuda),
    ("btseg-bench", ["--device", "cuda:x", "--no-peak"], "--device cuda:x", _torch_has_cuda),
    ("btseg-bench", ["--backends", "tensorrt", "--no-peak"], "tensorrt not installed", lambda: _installed("tensorrt")),
    ("btseg-bench", ["--iters", "5", "--duration", "1"], "--iters 5 and --duration 1", None),
    ("btseg-bench", ["--backends", "onnxruntime,nosuch"], "--backends", None),
    ("btseg-data", ["split", "{tmp}", "--out", "{tmp}/f.json", "--kfold", "5", "--val", "0.2"], "--val", None),
    ("btseg-data", ["split", "{tmp}", "--out", "{tmp}/f.json", "--kfold", "5", "--test", "0.3"], "--test", None),
    ("btseg-data", ["synth", "--out", "{existing}", "--n", "3", "--size", "64"], "not empty", None),
    ("btseg-data", ["synth", "--out", "{existing}", "--n", "3", "--size", "64", "--overwrite"],
     "not a btseg phantom set", None),
    ("btseg-distill", ["teachers", "--data", "{tmp}", "--out", "{tmp}/r", "--kd", "none", "--name", "x"],
     "--kd, --name", None),
    ("btseg-distill", ["teachers", "--data", "{tmp}", "--out", "{tmp}/r", "--alpha", "0.5"], "--alpha", None),
    ("btseg-demo", ["--out", "{tmp}/demo", "--preset", "foo"], "unknown preset 'foo'", None),
]


@pytest.mark.parametrize("script,argv,expect,skip_if", REFUSED, ids=[" ".join(c[1][:4]) for c in REFUSED])
def test_unhonourable_options_are_refused_before_any_work(tmp_path, script, argv, expect, skip_if):
    if skip_if is not None and skip_if():
        pytest.skip("this machine can honour the option")
    existing = _nonempty(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [a.format(tmp=tmp_path, existing=existing) for a in argv]
    r = CliRunner().invoke(_command(SCRIPTS[script]), args)
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert r.exit_code == 2, f"{script} {args}: exit {r.exit_code}: {r.output}"
    assert isinstance(r.exception, SystemExit), r.exception  # not a traceback
    assert lines and lines[-1].startswith("error: ") and expect in lines[-1], r.output
    assert "Traceback" not in r.output
    # nothing was written: no output folder, no data, the non-empty folder untouched
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (existing / "keep.txt").read_text() == "not btseg's"


def test_predict_default_output_moves_on_and_says_where(tmp_path, monkeypatch):
    from btseg.cli.predict import main

    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(main, ["--select", "preference"])
    assert first.exit_code == 0, first.output
    assert (tmp_path / "predictions").is_dir()
    second = CliRunner().invoke(main, [])
    assert second.exit_code == 0, second.output
    assert "writing to predictions-2/" in second.output and (tmp_path / "predictions-2").is_dir()
    # an explicit --out keeps the refusal
    third = CliRunner().invoke(main, ["--out", "predictions"])
    assert third.exit_code == 2 and third.output.strip().splitlines()[-1].startswith("error: ")


def test_synth_overwrite_replaces_its_own_set_and_never_mixes(tmp_path):
    import json

    from btseg.cli.data import main

    out = tmp_path / "ph"
    r = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "4", "--size", "64", "--workers", "1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "3", "--size", "48", "--workers", "1",
                                  "--overwrite"])
    assert r.exit_code == 0, r.output
    import cv2

    images = [p for p in out.rglob("*.png") if "_mask" not in p.name]
    assert len(images) == 3 and {cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape for p in images} == {(48, 48)}
    assert json.loads((out / "phantom.json").read_text())["n"] == 3
