"""The bundled default model and samples: they agree with each other, and every CLI runs
on them with no arguments (what a newcomer does first on a fresh install)."""

import json

import pytest
from click.testing import CliRunner

from btseg import defaults
from btseg.data import open_dataset
from btseg.metrics import MetricAccumulator
from btseg.package import load_package
from btseg.runtime import Segmenter

pytestmark = pytest.mark.skipif(not (defaults.DEFAULT_PACKAGE / "model.json").exists(),
                                reason="no bundled model: run `make weights`")


def _dice(seg: Segmenter) -> float:
    acc = MetricAccumulator(distances=False)
    for s in open_dataset(defaults.samples_dir()):
        acc.add(seg.segment(s.image).mask, s.mask, s.label)
    return acc.mean("dice")


def test_bundled_model_reaches_its_recorded_dice_on_the_bundled_samples():
    pkg = load_package(defaults.default_package())
    recorded = pkg.config.metrics["bundled_samples"]
    assert recorded["n"] == len(defaults.sample_images())
    assert _dice(Segmenter.load(pkg.root, backend="torch", threads=1)) == pytest.approx(recorded["dice"], abs=0.01)
    # and so does the artifact a user gets by default (auto: fastest verified one here)
    assert _dice(Segmenter.load(pkg.root, threads=1)) == pytest.approx(recorded["dice"], abs=0.01)


def test_bundled_package_is_complete_and_says_it_is_not_clinical():
    pkg = load_package(defaults.default_package())
    assert "NOT FOR CLINICAL USE" in pkg.config.notes and pkg.config.role == "student"
    arts = pkg.artifacts()
    assert {(a.target, a.precision) for a in arts} >= {("onnx", "fp32"), ("onnx", "int8"), ("openvino", "fp32")}
    for a in arts:
        pkg.artifact_path(a, check_sha=True)  # raises on a sha256 mismatch
        assert a.status == "ok" and a.verification["status"] == "passed"


def test_predict_with_no_arguments(tmp_path, monkeypatch):
    from btseg.cli.predict import main

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [])
    assert r.exit_code == 0, r.output
    stems = {p.stem for p in defaults.sample_images()}
    assert {p.name[: -len("_mask.png")] for p in (tmp_path / "predictions").glob("*_mask.png")} == stems
    rec = json.loads(next((tmp_path / "predictions").glob("*.json")).read_text())
    assert {"area_px", "bbox", "confidence", "timings"} <= set(rec)


def test_export_with_no_arguments_writes_a_new_package_not_the_bundled_one(tmp_path, monkeypatch):
    from btseg.cli.export import main

    before = (defaults.DEFAULT_PACKAGE / "manifest.json").read_bytes()
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [])
    assert r.exit_code == 0, r.output
    art = load_package(tmp_path / "btseg-export").artifact("onnx", "fp32")
    assert art.verification["status"] == "passed"
    assert (defaults.DEFAULT_PACKAGE / "manifest.json").read_bytes() == before


def test_bench_with_no_arguments(tmp_path, monkeypatch):
    from btseg.cli.bench import main

    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["--iters", "3", "--warmup", "1", "--no-memory", "--out", "b"])
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    ok = [x for x in rows if x["status"] == "ok"]
    assert len(ok) >= 5 and all(x["dice"] > 0.5 for x in ok)
    # the default is the backends installed here: a missing tensorrt is not a failed row
    from btseg.bench.runner import installed_backends

    assert {x["backend"] for x in rows} == set(installed_backends())
