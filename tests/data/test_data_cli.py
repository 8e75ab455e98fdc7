"""btseg-data: synth, inspect, split and one-line errors, through click's runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from btseg.cli.data import main
from btseg.data import KFold, Splits


def test_synth_inspect_split(tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["synth", "--out", str(tmp_path / "ph"), "--n", "12", "--size", "48", "--seed", "3",
                          "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "wrote 12 images" in res.stdout

    res = r.invoke(main, ["inspect", str(tmp_path / "ph"), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["layout"] == "busi" and sum(info["counts"].values()) == 12
    assert set(info["counts"]) == {"benign", "malignant", "normal"}
    assert info["sizes"]["min_hw"] == [48, 48] and info["coverage"]["normal"]["max"] == 0.0

    res = r.invoke(main, ["inspect", str(tmp_path / "ph")])
    assert res.exit_code == 0 and "benign" in res.stdout and "near-duplicates" in res.stdout

    res = r.invoke(main, ["split", str(tmp_path / "ph"), "--out", str(tmp_path / "s.json"), "--seed", "1",
                          "--val", "0.2", "--test", "0.2"])
    assert res.exit_code == 0, res.output
    s = Splits.load(tmp_path / "s.json")
    assert len(s.train + s.val + s.test) == 12 and s.seed == 1

    res = r.invoke(main, ["split", str(tmp_path / "ph"), "--out", str(tmp_path / "k.json"), "--kfold", "3"])
    assert res.exit_code == 0, res.output
    assert len(KFold.load(tmp_path / "k.json").folds) == 3


def test_bad_dir_is_one_line_and_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1 and "Traceback" not in res.output
