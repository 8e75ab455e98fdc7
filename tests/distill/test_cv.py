"""btseg-distill cv: end to end on the tiny preset, resumable per fold, fold properties, the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import btseg
from btseg.cli.distill import main
from btseg.data import KFold, Splits, kfold, open_dataset
from btseg.distill import ddp
from btseg.distill.cv import fold_splits, parse_grid, parse_variants, summarise
from btseg.errors import ConfigError
from btseg.io import read_json
from btseg.package import load_package

ROOT = str(Path(btseg.__file__).resolve().parents[1])
TINY = ["--preset", "tiny", "--device", "cpu", "--no-progress", "--threads", "1"]


def test_cv_three_folds_end_to_end_with_kd_search(phantom_dir, tmp_path):
    out = tmp_path / "cv"
    r = CliRunner().invoke(main, ["cv", "--data", str(phantom_dir), "--out", str(out), "--folds", "3",
                                  "--search", "kd", "--kd-grid", "1:1:2,0.5:0.5:4", "--resamples", "500", *TINY])
    assert r.exit_code == 0, r.output
    ids = open_dataset(phantom_dir).ids
    held = []
    for k in range(3):
        fold = read_json(out / f"fold-{k}" / "fold.json")
        split = Splits.load(out / f"fold-{k}" / "splits.json")
        assert not (set(split.train) & set(split.val)) and not (set(split.train) | set(split.val)) & set(split.test)
        for name in ("teacher-benign", "teacher-malignant", "student-none", "student-dual-a1-b1-T2",
                     "student-dual-a0.5-b0.5-T4"):
            assert load_package(out / f"fold-{k}" / name).config.preset == "tiny"
        dual = fold["variants"]["dual"]
        assert [t["package"] for t in dual["search"]] == ["student-dual-a1-b1-T2", "student-dual-a0.5-b0.5-T4"]
        best = max(t["val_dice"] for t in dual["search"])  # chosen on validation, never on test
        assert dual["val_dice"] == best and dual["package"] in [t["package"] for t in dual["search"]]
        assert sorted(r["id"] for r in fold["variants"]["none"]["rows"]) == sorted(split.test)
        held += split.test
    assert sorted(held) == sorted(ids)  # every image held out exactly once
    s = read_json(out / "cv.json")
    assert s["n_images"] == len(ids) and set(s["variants"]) == {"dual", "none"}
    assert s["variants"]["none"]["overall"]["dice"]["n"] == len(ids)
    pair = s["pairs"]["dual - none"]["dice"]
    assert pair["n"] == len(ids) and pair["ci95_low"] <= pair["delta"] <= pair["ci95_high"]
    assert len(s["search"]["dual"]) == 3
    md = (out / "cv.md").read_text()
    assert "dual - none" in md and "KD weights chosen on validation" in md
    assert "3-fold CV" in r.output and "paired bootstrap" in r.output  # the terminal table



def test_cv_skip_bad_holds_out_only_good_items_and_records_the_skipped(tmp_path):
    """cv --skip-bad: every good item held out exactly once, every bad one named once and
    recorded in each fold's splits.json and packages; without it, refused naming them all."""
    from btseg.data.phantom import synthesize

    s = synthesize(tmp_path / "messy", n=24, size=64, seed=0, workers=1, defects="all")
    bad = {f for d in s["defects"] if d["bad"] for f in d["files"]}
    out = tmp_path / "cv"
    args = ["cv", "--data", str(tmp_path / "messy"), "--out", str(out), "--folds", "3", "--variants", "none",
            "--resamples", "200", *TINY]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and all(f.split("/")[-1] in r.stderr for f in bad) and not out.exists()
    r = CliRunner().invoke(main, [*args, "--skip-bad"])
    assert r.exit_code == 0, r.output
    assert all(r.stderr.count(f.split("/")[-1] + ":") == 1 for f in bad)  # named once, not once per fold
    good = open_dataset(tmp_path / "messy", skip_bad=True, verify=True).ids  # decoded, as cv does
    held = []
    for k in range(3):
        split = Splits.load(out / f"fold-{k}" / "splits.json")
        assert {d["file"] for d in split.dataset["skipped"]} == bad
        assert {d["file"] for d in load_package(out / f"fold-{k}" / "student-none").config.data["skipped"]} == bad
        held += split.test
    assert sorted(held) == sorted(good)
    assert read_json(out / "cv.json")["n_images"] == len(good)

def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ddp.FAULT_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]), **extra)
    return env


def test_killed_cv_resumes_and_skips_finished_folds(phantom_dir, tmp_path):
    out = tmp_path / "cv"
    args = ["cv", "--data", str(phantom_dir), "--out", str(out), "--folds", "3", "--variants", "none",
            "--resamples", "200", *TINY]
    r = CliRunner().invoke(main, [*args, "--only", "0"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"folds": 3, "folds_done": [0]} and not (out / "cv.json").exists()
    done0 = (out / "fold-0" / "fold.json").stat().st_mtime_ns
    # SIGKILL in the next fold's second epoch, as a crash would: fold 1 left unfinished
    cmd = [sys.executable, "-m", "btseg.cli.distill", *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=_env(**{ddp.FAULT_ENV: "name=student-none,epoch=2,step=0"}))
    assert p.returncode == -9, p.stderr
    assert not (out / "fold-1" / "fold.json").exists() and (out / "fold-1" / "student-none" / "train").is_dir()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert p.returncode == 0, p.stderr
    assert (out / "fold-0" / "fold.json").stat().st_mtime_ns == done0  # skipped, not redone
    assert load_package(out / "fold-1" / "student-none").config.training["resumed_from"] == 1
    assert load_package(out / "fold-2" / "student-none").config.training["resumed_from"] is None
    assert read_json(out / "cv.json")["n_images"] == len(open_dataset(phantom_dir))
    # another configuration into the same directory: refused, nothing run
    r = CliRunner().invoke(main, [*args, "--seed", "1"])
    assert r.exit_code == 2 and "cv-plan.json" in r.output and "Traceback" not in r.output
    # added variants extend the study: finished folds train only the new one, keep the old rows
    rows0 = read_json(out / "fold-0" / "fold.json")["variants"]["none"]["rows"]
    r = CliRunner().invoke(main, [*args[:args.index("--variants")], "--variants", "response,none",
                                  *args[args.index("--variants") + 2:]])
    assert r.exit_code == 0, r.output
    fold0 = read_json(out / "fold-0" / "fold.json")
    assert set(fold0["variants"]) == {"none", "response"} and fold0["variants"]["none"]["rows"] == rows0
    assert "response - none" in read_json(out / "cv.json")["pairs"]
    assert read_json(out / "cv-plan.json")["variants"] == ["none", "response"]


@pytest.mark.parametrize("args, message", [
    (["--variants", "dual,bogus"], "variant 'bogus'"),
    (["--variants", "none-mean"], "variant 'none-mean'"),
    (["--search", "kd", "--kd-grid", "1:1"], "--kd-grid '1:1'"),
    (["--kd-grid", "1:1:2"], "--kd-grid needs --search kd"),
    (["--kd", "none"], "--teachers do not apply"),
    (["--teachers", "mean"], "--teachers do not apply"),
    (["--folds", "2"], "--folds"),
    (["--only", "x"], "--only 'x'"),
    (["--only", "7"], "--only [7]"),
])
def test_bad_cv_input_exits_2_with_one_line(phantom_dir, tmp_path, args, message):
    r = CliRunner().invoke(main, ["cv", "--data", str(phantom_dir), "--out", str(tmp_path / "o"), *TINY, *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_parsers():
    assert [v.name for v in parse_variants("dual, none,dual-mean")] == ["dual", "none", "dual-mean"]
    assert parse_grid("1:1:2,0.5:0.25:4") == ((1.0, 1.0, 2.0), (0.5, 0.25, 4.0))
    for bad in ("", "dual,dual", "feature-x"):
        with pytest.raises(ConfigError):
            parse_variants(bad)


# -- fold properties on constructed data sets: classes stratified, copies never split ----------

def _write_set(root: Path, labels: list[str], copies: list[int], seed: int) -> dict[str, str]:
    """One image per label; image i is an exact copy of image copies[i] when copies[i] < i and
    the labels agree.  Returns {id: id of the original} for every copy."""
    rng = np.random.default_rng(seed)
    pixels: list[np.ndarray] = []
    orig: dict[str, str] = {}
    count: Counter = Counter()
    ids = []
    for i, lab in enumerate(labels):
        count[lab] += 1
        rel = f"{lab}/{lab} ({count[lab]}).png"
        j = copies[i]
        if j < i and labels[j] == lab:
            img = pixels[j]
            orig[rel] = orig.get(ids[j], ids[j])
        else:
            img = (rng.random((8, 8)) * 255).astype(np.uint8)  # random 8x8 blocks: far apart in phash
            img = cv2.resize(img, (32, 32), interpolation=cv2.INTER_NEAREST)
        pixels.append(img)
        ids.append(rel)
        (root / lab).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img)
        mask = np.zeros((32, 32), np.uint8)
        if lab != "normal":
            mask[8:20, 8:20] = 255
        cv2.imwrite(str(root / rel.replace(".png", "_mask.png")), mask)
    return orig


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["benign", "malignant", "normal"]), min_size=6, max_size=24),
       st.data(), st.integers(2, 5), st.integers(0, 100))
def test_folds_stratified_and_copies_kept_together(tmp_path_factory, labels, data, k, seed):
    copies = data.draw(st.lists(st.integers(0, len(labels) - 1), min_size=len(labels), max_size=len(labels)))
    root = tmp_path_factory.mktemp("set")
    orig = _write_set(root, labels, copies, seed)
    ds = open_dataset(root)
    if k > len(ds):
        return
    kf = kfold(ds, k, seed=seed)
    where = {i: j for j, f in enumerate(kf.folds) for i in f}
    assert sorted(where) == sorted(ds.ids) and sum(map(len, kf.folds)) == len(ds)  # each image once
    for copy, first in orig.items():
        assert where[copy] == where[first]  # a near-duplicate never crosses a fold boundary
    group = Counter(orig.get(i, i) for i in ds.ids)  # group sizes, by original
    lab = dict(zip(ds.ids, ds.labels))
    for c in set(ds.labels):
        per_fold = [sum(lab[i] == c for i in f) for f in kf.folds]
        biggest = max(n for g, n in group.items() if lab[g] == c)
        assert max(per_fold) - min(per_fold) <= biggest  # stratified up to one whole group
    for i in range(k):
        s = fold_splits(kf, i)
        assert s.test == kf.folds[i] and s.val == kf.folds[(i + 1) % k]
        assert sorted(s.train + s.val + s.test) == sorted(ds.ids)
    assert KFold.load  # noqa: B018 - the fold file type used by cv


def test_summary_pairs_by_image_not_by_position():
    rows_a = [{"id": f"x{i}", "label": "benign" if i % 3 else "normal", "dice": 0.8 if i % 3 else 1.0,
               "iou": 0.7, "lesion_predicted": True} for i in range(12)]
    rows_b = [{**r, "dice": r["dice"] - 0.1 if r["label"] == "benign" else r["dice"],
               "lesion_predicted": r["label"] != "normal"} for r in reversed(rows_a)]
    recs = [{"fold": 0, "n_test": 12, "variants": {"a": {"rows": rows_a}, "b": {"rows": rows_b}}}]
    s = summarise(recs, ["a", "b"], 500)
    les = s["pairs"]["a - b"]["dice_lesion"]
    assert les["delta"] == pytest.approx(0.1) and les["ci95_low"] == pytest.approx(0.1)
    assert s["pairs"]["a - b"]["false_lesion_normal"]["delta"] == pytest.approx(1.0)
    assert s["variants"]["a"]["normal"]["false_lesion"] == {"k": 4, "n": 4}
    assert s["variants"]["b"]["normal"]["false_lesion"] == {"k": 0, "n": 4}


def test_cv_under_torchrun_two_processes(phantom_dir, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "cv"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-port", str(port),
           "-m", "btseg.cli.distill", "cv", "--data", str(phantom_dir), "--out", str(out), "--folds", "3",
           "--variants", "none", "--batch-size", "6", "--resamples", "200", "--preset", "tiny", "--device", "cpu",
           "--no-progress"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())
    assert p.returncode == 0, p.stderr[-3000:]
    for k in range(3):
        t = load_package(out / f"fold-{k}" / "student-none").config.training
        assert t["world_size"] == 2 and t["global_batch"] == 6
    assert read_json(out / "cv.json")["n_images"] == len(open_dataset(phantom_dir))
