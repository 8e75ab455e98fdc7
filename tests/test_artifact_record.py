"""Typed artifact records: what other layers read from a manifest record goes through
ArtifactRecord's accessors, validated by the schema; the runtime never reads package files
itself."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.defaults import DEFAULT_PACKAGE
from btseg.errors import ArtifactError, SchemaError
from btseg.layout import config_path, manifest_path
from btseg.package import ArtifactRecord, EngineBuild
from btseg.schema import check_manifest

ROOT = Path(__file__).resolve().parents[1] / "btseg"
MODEL = json.loads(config_path(DEFAULT_PACKAGE).read_text())
MANIFEST = json.loads(manifest_path(DEFAULT_PACKAGE).read_text())


def onnx_record() -> dict:
    return copy.deepcopy(next(a for a in MANIFEST["artifacts"] if a["target"] == "onnx"))


def test_also_verified_accessors():
    rec = ArtifactRecord.from_dict(onnx_record())
    assert rec.also_verified["openvino"]["status"] == "passed" and not rec.failed_on("openvino")
    rec.also_verified = {"openvino": {"status": "failed", "failures": ["Dice 0.5 < 0.999"]}}
    assert rec.failed_on("openvino") and rec.failure_on("openvino") == "Dice 0.5 < 0.999"
    assert not rec.failed_on("onnxruntime") and rec.failure_on("onnxruntime") == ""
    doc = {**MANIFEST, "artifacts": [dict(vars(rec))]}
    check_manifest(json.loads(json.dumps(doc)), "manifest.json", MODEL)  # what the setter writes validates


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([
    ("also_verified", []), ("also_verified", {"nosuchbackend": {"status": "passed"}}),
    ("also_verified", {"openvino": {"status": "maybe"}}), ("also_verified", {"openvino": {}}),
    ("also_verified", {"openvino": {"status": "failed", "failures": "one string"}}),
    ("gpu", 3), ("tensorrt", ["10.3"]), ("compute_capability", 8.0)]))
def test_the_schema_refuses_a_malformed_typed_key(bad):
    key, value = bad
    a = onnx_record()
    a["extra"][key] = value
    with pytest.raises(SchemaError, match=r"artifacts\[0\]\.extra\." + key):
        check_manifest({**MANIFEST, "artifacts": [a]}, "manifest.json", MODEL)


def test_engine_build_has_one_spelling():
    built = EngineBuild.from_extra({"tensorrt": "10.3.0.26", "gpu": "NVIDIA A100", "compute_capability": "8.0"})
    assert built == EngineBuild("10.3.0.26", "NVIDIA A100", "8.0")
    # the old alternative spellings are not read: export never wrote them
    assert EngineBuild.from_extra({"trt_version": "9", "gpu_name": "x", "device_name": "y", "sm": "86"}) == EngineBuild()
    from btseg.runtime.tensorrt_backend import check_compatible

    with pytest.raises(ArtifactError, match="rebuild on the target"):
        check_compatible(built, "10.8.0", "NVIDIA A100", (8, 0))


def test_the_runtime_reads_no_package_file_itself():
    # manifest.json / model.json are read (schema- and integrity-checked) by btseg.package only
    banned = {"read_json", "manifest_path", "config_path", "MANIFEST", "CONFIG"}
    found = []
    for path in sorted((ROOT / "runtime").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if name in banned and not (path.name == "presence.py" and name == "CONFIG"):  # an error label there
                found.append(f"{path.name}:{node.lineno}: {name}")
    assert found == []
