"""``btseg-distill calibrate``: a package's "no lesion" decision calibrated again on other
scans (a site's own), written into model.json, and applied by every reader of it.

Real components: a phantom data set, a package written by save_package, the runtime's own
evaluation path.  The model is random-init: these tests check the plumbing and the
contract (the decision written is the one the runtime applies), not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from btseg.cli.distill import main
from btseg.distill.calibrate import min_lesions
from btseg.layout import CONFIG
from btseg.package import load_package

SIZE = 64


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """48 phantom scans: 40 with a lesion (enough for a 0.95 target), 8 normal."""
    from btseg.data.phantom import synthesize

    root = tmp_path_factory.mktemp("site") / "scans"
    synthesize(root, n=48, size=SIZE, seed=3, workers=1, fractions=(0.5, 1 / 3, 1 / 6))
    return root


@pytest.fixture()
def package(tmp_path) -> Path:
    from btseg.models import create_model
    from btseg.package import ModelConfig, save_package
    from btseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    kwargs = {"widths": [8, 16, 32]}
    root = tmp_path / "student"
    save_package(root, create_model("simplified_unet", **kwargs).eval(),
                 ModelConfig(architecture="simplified_unet", kwargs=kwargs, preset="test",
                             preprocess=PreprocessSpec(size=(SIZE, SIZE))))
    return root


def _calibrate(*args: str):
    r = CliRunner().invoke(main, ["calibrate", *args])
    return r, (json.loads(r.stdout[r.stdout.index("{"):]) if r.exit_code == 0 else None)


def test_the_written_decision_is_the_one_the_runtime_applies(site, package):
    from btseg.data import open_dataset
    from btseg.distill.evaluate import evaluate_package

    assert "presence" not in load_package(package).config.postprocess  # ungated before
    r, done = _calibrate(str(package), "--data", str(site), "--target", "0.9")
    assert r.exit_code == 0, r.output
    presence = load_package(package).config.postprocess["presence"]
    assert presence == done["presence"] and done["written"] and done["previous"] is None
    cal = presence["calibration"]
    assert cal["split"] == "all" and cal["data"] == str(site.resolve()) and cal["recalibrated"]
    assert cal["val"]["n_lesion"] == 40 and cal["val"]["detected"] >= 36  # the target, on these scans
    # the package, read back, counts exactly what the calibration counted
    counts = evaluate_package(package, open_dataset(site), distances=False)["presence"]
    assert counts["lesion"]["detected"] == cal["val"]["detected"]
    assert counts["normal"]["flagged"] == cal["val"]["flagged"]
    # once more: the previous decision is recorded, with where it was calibrated
    r, again = _calibrate(str(package), "--data", str(site), "--target", "0.95")
    assert r.exit_code == 0, r.output
    prev = again["presence"]["calibration"]["previous"]
    assert prev["threshold"] == presence["threshold"] and prev["calibrated_on"]["data"] == str(site.resolve())
    assert f"decision was {presence['score']} >= {presence['threshold']:.4f}" in " ".join(r.stderr.split())


def test_dry_run_writes_nothing(site, package):
    before = (package / CONFIG).read_bytes()
    r, done = _calibrate(str(package), "--data", str(site), "--dry-run")
    assert r.exit_code == 0, r.output
    assert not done["written"] and "--dry-run: not written" in " ".join(r.stderr.split())
    assert (package / CONFIG).read_bytes() == before


def test_too_few_lesion_images_is_refused_and_nothing_changes(tmp_path, package):
    from btseg.data.phantom import synthesize

    few = tmp_path / "few"
    synthesize(few, n=12, size=SIZE, seed=1, workers=1)
    before = (package / CONFIG).read_bytes()
    r, _ = _calibrate(str(package), "--data", str(few))
    assert r.exit_code == 2
    line = r.stderr.strip().splitlines()
    assert len(line) == 1 and str(few) in line[0] and f"at least {min_lesions(0.95)}" in line[0], r.stderr
    assert (package / CONFIG).read_bytes() == before


@pytest.mark.parametrize("args, message", [
    (["--split", "train"], "--split train"),
    (["--target", "1.5"], "--target 1.5"),
    (["--target", "0"], "--target 0"),
    (["--split", "holdout"], "split 'holdout'"),
    (["--data", "/nonexistent/scans"], "/nonexistent/scans: data directory not found"),
])
def test_bad_input_exits_2_with_one_line(site, package, args, message):
    base = {"--data": str(site)}
    base.update(dict(zip(args[::2], args[1::2])))
    before = (package / CONFIG).read_bytes()
    r = CliRunner().invoke(main, ["calibrate", str(package), *[x for kv in base.items() for x in kv]])
    assert r.exit_code == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert (package / CONFIG).read_bytes() == before


def test_a_split_part_needs_a_split_file(site, package):
    r, _ = _calibrate(str(package), "--data", str(site), "--split", "val")
    assert r.exit_code == 2 and "split file not found" in r.stderr


@pytest.mark.parametrize("target, need", [(0.95, 20), (0.9, 10), (0.5, 2), (0.99, 100)])
def test_min_lesions(target, need):
    assert min_lesions(target) == need


def test_dataset_b_layout_calibrates_on_lesions_alone(tmp_path, package):
    """Dataset B (UDIAT) has no normal images: the target is still met on its lesions, and
    the cost on normal images is recorded as 0 of 0, not invented."""
    from btseg.data.phantom import write_datasetb

    root = tmp_path / "DatasetB"
    write_datasetb(root, n=24, seed=2, size=SIZE)
    r, done = _calibrate(str(package), "--data", str(root), "--target", "0.9")
    assert r.exit_code == 0, r.output
    val = done["presence"]["calibration"]["val"]
    assert val["n_lesion"] == 24 and val["detected"] >= 22 and (val["flagged"], val["n_normal"]) == (0, 0)


def test_a_messy_set_is_refused_naming_every_bad_item_or_skipped_and_recorded(tmp_path, package):
    from btseg.data.phantom import synthesize

    messy = tmp_path / "messy"
    s = synthesize(messy, n=48, size=SIZE, seed=4, workers=1, defects="all")
    bad = sorted({f for d in s["defects"] if d["bad"] for f in d["files"]})
    assert bad
    before = (package / CONFIG).read_bytes()
    r, _ = _calibrate(str(package), "--data", str(messy))
    assert r.exit_code == 2 and (package / CONFIG).read_bytes() == before
    assert all(Path(f).name in r.stderr for f in bad), (bad, r.stderr)
    r, done = _calibrate(str(package), "--data", str(messy), "--skip-bad", "--target", "0.9")
    assert r.exit_code == 0, r.output
    skipped = done["presence"]["calibration"]["skipped"]
    assert skipped and all(k in item for item in skipped for k in ("file", "reason"))
    assert load_package(package).config.postprocess["presence"]["calibration"]["skipped"] == skipped


def test_a_missing_package_is_named_and_not_created(site, tmp_path):
    missing = tmp_path / "no-such-package"
    r, _ = _calibrate(str(missing), "--data", str(site))
    assert r.exit_code == 2 and str(missing) in r.stderr and r.stderr.count("\n") == 1
    assert not missing.exists()  # the writer lock must not create what it was asked to change


def test_a_model_that_finds_nothing_cannot_reach_the_target_and_nothing_changes(site, tmp_path):
    from btseg.models import create_model
    from btseg.package import ModelConfig, save_package
    from btseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    kwargs = {"widths": [8, 16, 32], "presence_head": True}
    model = create_model("simplified_unet", **kwargs).eval()
    with torch.no_grad():  # its presence head calls every image normal: no pixel reaches 0.5
        model.presence.weight.zero_()
        model.presence.bias.fill_(-60.0)
    root = tmp_path / "blind"
    save_package(root, model, ModelConfig(architecture="simplified_unet", kwargs=kwargs, preset="test",
                                          preprocess=PreprocessSpec(size=(SIZE, SIZE))))
    before = (root / CONFIG).read_bytes()
    r, _ = _calibrate(str(root), "--data", str(site))
    assert r.exit_code == 2 and "cannot be reached" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert (root / CONFIG).read_bytes() == before
