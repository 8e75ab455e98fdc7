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


def _messy(tmp_path):
    from btseg.data.phantom import synthesize

    s = synthesize(tmp_path / "messy", n=24, size=48, seed=2, workers=1, defects="all")
    return tmp_path / "messy", {f for d in s["defects"] if d["bad"] for f in d["files"]}


def test_inspect_lists_every_problem_summarises_the_rest_and_exits_1(tmp_path):
    root, bad = _messy(tmp_path)
    r = CliRunner()
    res = r.invoke(main, ["inspect", str(root), "--json"])
    assert res.exit_code == 1, res.output
    info = json.loads(res.stdout)
    assert {p["file"].replace(str(root) + "/", "") for p in info["problems"]} == bad
    assert info["n"] == 24 - sum(not f.endswith("orphan_mask.png") for f in bad)
    assert sum(info["counts"].values()) == info["n"] and info["coverage"]["benign"]["mean"] > 0
    res = r.invoke(main, ["inspect", str(root)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{len(bad)} bad item(s)" in res.stdout and "good item(s)" in res.stdout
    assert all(f.split("/")[-1] in res.stdout for f in bad)


def test_split_refuses_naming_all_or_skips_and_records(tmp_path):
    root, bad = _messy(tmp_path)
    r = CliRunner()
    res = r.invoke(main, ["split", str(root), "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 2 and not (tmp_path / "s.json").exists()
    assert res.stderr.startswith("error: ") and all(f.split("/")[-1] in res.stderr for f in bad)
    res = r.invoke(main, ["split", str(root), "--out", str(tmp_path / "s.json"), "--skip-bad"])
    assert res.exit_code == 0, res.output
    assert sum(f.split("/")[-1] in res.stderr for f in bad) == len(bad) and res.stderr.startswith("warning: ")
    skipped = Splits.load(tmp_path / "s.json").dataset["skipped"]
    assert {d["file"] for d in skipped} == bad and all(d["reason"] for d in skipped)
