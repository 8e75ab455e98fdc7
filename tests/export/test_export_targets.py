"""Export targets are specs (btseg.specs.EXPORT_TARGETS): a target registered there is planned,
built, verified, installed and run like the built-in ones, with nothing else edited."""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from btseg.errors import BackendUnavailableError, ConfigError
from btseg.export import onnx as O
from btseg.export import run_export
from btseg.export import targets as T
from btseg.export.job import Built
from btseg.export.plan import plan_jobs
from btseg.package import load_package
from btseg.specs import BACKEND_SPECS, CALIB_METHODS, EXPORT_TARGETS, PRECISIONS, ExportTarget

DOCS = Path(__file__).resolve().parents[2] / "docs" / "export.md"
built_jobs: list = []


def build_fake(b, job) -> Built:
    """The fake target's builder: the package's ONNX of that precision, under its own name."""
    src, info = b.onnx_file(job.precision)
    name = f"fake-{job.precision}.onnx"
    dst = b.staging / name
    shutil.copyfile(src, dst)
    built_jobs.append(job)
    ins, outs = O.io_signature(dst)
    return Built(dst, dst, name, name, O.opset_of(dst), ins, outs, {"built_by": "test_export_targets"})


FAKE = ExportTarget("fake", (".onnx",), ("fp32", "fp16"), (), build_fake, lambda precision: None,
                    ("onnxruntime",), toolchain=("btseg", "onnx"), note="a test target")


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(EXPORT_TARGETS, "fake", FAKE)
    built_jobs.clear()
    return FAKE


def test_a_registered_target_is_planned_from_its_spec(fake):
    assert [j.id for j in plan_jobs(["fake"], ["fp32", "fp16"])] == ["fake-fp32", "fake-fp16"]
    with pytest.raises(ConfigError, match="fake/int8 is not supported: fake can do fp32, fp16"):
        plan_jobs(["fake"], ["int8"])
    assert "fake" in [j.target for j in plan_jobs(["all"], ["fp32"])]


def test_a_registered_target_is_built_verified_installed_and_run(fake, pkg_copy, phantom, monkeypatch):
    from btseg.runtime import Segmenter

    results = run_export(pkg_copy, ["fake"], ["fp32"], calib_data=phantom, verify_n=4)
    assert [(r.target, r.precision, r.status) for r in results] == [("fake", "fp32", "ok")]
    assert [j.id for j in built_jobs] == ["fake-fp32"]
    rec = load_package(pkg_copy).artifact("fake", "fp32")
    assert rec.file == "fake-fp32.onnx" and rec.extra["built_by"] == "test_export_targets"
    assert set(rec.toolchain) == {"btseg", "onnx"}  # the spec's toolchain, recorded
    v = rec.verification  # verified through the spec's gating backend, against PyTorch
    assert v["status"] == "passed" and v["backend"]["backend"] == "onnxruntime" and v["dice_vs_torch"] >= 0.999
    # a backend that lists the target runs it like any other artifact
    monkeypatch.setitem(BACKEND_SPECS, "onnxruntime",
                        dataclasses.replace(BACKEND_SPECS["onnxruntime"], targets=("onnx", "fake")))
    seg = Segmenter.load(pkg_copy, target="fake", precision="fp32", backend="onnxruntime")
    assert seg.record.id == "fake-fp32"
    assert seg.segment(np.zeros((64, 64), np.uint8)).mask.shape == (64, 64)


def test_a_target_this_machine_cannot_build_is_refused_or_skipped_by_its_probe(fake, pkg_copy, monkeypatch):
    monkeypatch.setitem(EXPORT_TARGETS, "fake", dataclasses.replace(FAKE, probe=lambda p: "fakelib not installed"))
    with pytest.raises(BackendUnavailableError, match="fake/fp32: fakelib not installed"):
        run_export(pkg_copy, ["fake"], ["fp32"], verify=False)
    assert built_jobs == []


@pytest.mark.parametrize("spec", list(EXPORT_TARGETS.values()), ids=lambda s: s.name)
def test_every_built_in_spec_is_consistent(spec):
    assert set(spec.precisions) <= set(PRECISIONS) and set(spec.calib_methods) <= set(CALIB_METHODS)
    for name in spec.verified_by:  # each verifying backend runs the target's artifacts
        assert spec.name in BACKEND_SPECS[name].targets, (spec.name, name)
    gate = BACKEND_SPECS[spec.verified_by[0]]
    assert gate.targets[0] == spec.name  # the gating backend is the one whose own format it is
    assert any(spec.device.startswith(d) for d in gate.devices)
    # builder(builder, job) and probe(precision): the signatures the pipeline and planning call
    assert list(inspect.signature(T.resolve(spec.builder)).parameters) == ["b", "job"]
    assert len(inspect.signature(T.resolve(spec.probe)).parameters) == 1
    # every target a backend runs (but the package's own torch weights) has a spec
    assert {t for s in BACKEND_SPECS.values() for t in s.targets} - {"torch"} == set(EXPORT_TARGETS)


def test_the_docs_table_is_the_specs():
    text = DOCS.read_text()
    block = re.search(r"<!-- targets-table -->\n(.*?)\n<!-- /targets-table -->", text, re.S)
    assert block is not None and block.group(1) == T.markdown()


def test_cli_choices_come_from_the_specs():
    from click.testing import CliRunner

    from btseg.cli.export import main

    out = CliRunner().invoke(main, ["--help"]).output
    assert "|".join(EXPORT_TARGETS) + "|all" in re.sub(r"\s+", "", out)
