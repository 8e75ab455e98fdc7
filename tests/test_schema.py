"""model.json / manifest.json validation: named cases, then Hypothesis mutations of valid docs.

Every malformed document must give one SchemaError (an ArtifactError: CLI exit 2) naming
the file and the field, never another exception, and never a model built from it.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg import defaults
from btseg.errors import ArtifactError, SchemaError
from btseg.package import load_package

_HAVE = (defaults.DEFAULT_PACKAGE / "manifest.json").exists()
pytestmark = pytest.mark.skipif(not _HAVE, reason="bundled package missing (make weights)")
MODEL = json.loads((defaults.DEFAULT_PACKAGE / "model.json").read_text()) if _HAVE else {}
MANIFEST = json.loads((defaults.DEFAULT_PACKAGE / "manifest.json").read_text()) if _HAVE else {}


def _write(root: Path, model: object, manifest: object | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.json").write_text(json.dumps(model))
    if manifest is not None:
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _set(doc: dict, path: str, value: object) -> dict:
    d = copy.deepcopy(doc)
    *head, last = path.split(".")
    cur = d
    for k in head:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    if value is _DELETE:
        del cur[last]
    elif isinstance(cur, list):
        cur[int(last)] = value
    else:
        cur[last] = value
    return d


_DELETE = object()
MODEL_CASES = [  # (field, value, what the message must say)
    ("threshold", 1.5, "threshold = 1.5: expected a finite number in (0, 1)"),
    ("threshold", math.nan, "threshold = nan"),
    ("threshold", 0, "threshold = 0"),
    ("threshold", "0.5", "threshold = '0.5'"),
    ("threshold", True, "threshold = True"),
    ("preprocess.std", 0, "preprocess.std = 0"),
    ("preprocess.std", math.inf, "preprocess.std = inf"),
    ("preprocess.mean", 3.0, "preprocess.mean = 3.0"),
    ("preprocess.size", [100, 128], "preprocess.size[0] = 100: expected a multiple of 16"),
    ("preprocess.size", [0, 128], "preprocess.size[0] = 0"),
    ("preprocess.size", [128], "preprocess.size = [128]"),
    ("preprocess.interpolation", "lanczos", "preprocess.interpolation"),
    ("kwargs.widths", [8, 16, 32, 64, 10**6], "kwargs.widths[4] = 1000000"),
    ("kwargs.widths", [4096] * 8, "kwargs.widths"),
    ("kwargs.widths", "8,16", "kwargs.widths = '8,16'"),
    ("kwargs", [], "kwargs = 'list': expected a JSON object"),
    ("weights_sha256", _DELETE, "weights_sha256 is missing"),
    ("weights_sha256", "abc", "weights_sha256 = 'abc'"),
    ("format_version", 1, "format_version 1 predates the integrity chain"),
    ("format_version", 99, "format_version = 99: expected 2"),
    ("architecture", 7, "architecture = 7"),
    ("postprocess.fill_holes", "yes", "postprocess.fill_holes = 'yes'"),
]


@pytest.mark.parametrize("field,value,message", MODEL_CASES, ids=[f"{c[0]}=" + ("<deleted>" if c[1] is _DELETE else repr(c[1]))[:40] for c in MODEL_CASES])
def test_model_json_field_refused_with_file_field_and_expectation(tmp_path, field, value, message):
    root = _write(tmp_path / "pkg", _set(MODEL, field, value))
    with pytest.raises(SchemaError) as e:
        load_package(root, check_architecture=False)
    assert str(e.value).startswith(str(root / "model.json")) and message in str(e.value)


@pytest.mark.parametrize("doc", [[], "x", 3, None, [MODEL]])
def test_model_json_not_an_object(tmp_path, doc):
    with pytest.raises(SchemaError, match="model.json: .*expected a JSON object"):
        load_package(_write(tmp_path / "pkg", doc), check_architecture=False)


MANIFEST_CASES = [
    ("artifacts.0.sha256", _DELETE, "artifacts[0].sha256 is missing"),
    ("artifacts.0.files", _DELETE, "artifacts[0].files is missing"),
    ("artifacts.0.weights_sha256", _DELETE, "artifacts[0].weights_sha256 is missing"),
    ("artifacts.0.file", "../x.onnx", "artifacts[0].file = '../x.onnx': expected a relative path"),
    ("artifacts.0.file", "/dev/zero", "artifacts[0].file = '/dev/zero'"),
    ("artifacts.0.file", "/", "artifacts[0].file = '/'"),
    ("artifacts.0.size_bytes", "12", "artifacts[0].size_bytes = '12'"),
    ("artifacts.0.size_bytes", -1, "artifacts[0].size_bytes = -1"),
    ("artifacts.0.target", "coreml", "artifacts[0].target = 'coreml'"),
    ("artifacts.0.preprocess.std", 0.5, "artifacts[0].preprocess.std = 0.5: expected 0.25 as in model.json"),
    ("artifacts.0.preprocess.mean", 3.0, "artifacts[0].preprocess.mean = 3.0"),
    ("artifacts.0.preprocess.size", [96, 96], "artifacts[0].inputs[0].shape"),
    ("artifacts.0.id", "onnx-int8", "artifacts[0].id = 'onnx-int8': expected 'onnx-fp32'"),
    ("artifacts.4.files.1.file", "openvino-fp32/../../x.bin", "files[1].file"),
    ("artifacts", {}, "artifacts = {}: expected a list"),
    ("threshold", 0.9, "threshold = 0.9: expected 0.5 as in model.json"),
    ("format_version", 1, "format_version 1 predates"),
]


@pytest.mark.parametrize("field,value,message", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_field_refused(tmp_path, field, value, message):
    root = _write(tmp_path / "pkg", MODEL, _set(MANIFEST, field, value))
    with pytest.raises(SchemaError) as e:
        load_package(root, check_architecture=False).artifacts()
    assert str(e.value).startswith(str(root / "manifest.json")) and message in str(e.value)


def test_duplicate_artifact_id_refused(tmp_path):
    doc = copy.deepcopy(MANIFEST)
    doc["artifacts"].append(doc["artifacts"][0])
    with pytest.raises(SchemaError, match=r"artifacts\[6\].id = 'onnx-fp32': expected each id once"):
        load_package(_write(tmp_path / "pkg", MODEL, doc), check_architecture=False).artifacts()


def test_hostile_widths_refused_before_any_allocation(tmp_path):
    # with the architecture check (which imports torch): still refused by the schema first
    root = _write(tmp_path / "pkg", _set(MODEL, "kwargs.widths", [10**6] * 5))
    with pytest.raises(SchemaError, match="kwargs.widths"):
        load_package(root).build_model(load_weights=False)


# -- Hypothesis: random mutations of the valid documents -----------------------------------

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(10**9), 10**9), st.floats(), st.text(max_size=12))
VALUE = st.recursive(LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                     max_leaves=6)


def _paths(doc: object, prefix: str = "") -> list[str]:
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    for k, v in items:
        p = f"{prefix}{k}"
        out.append(p)
        out += _paths(v, p + ".")
    return out


@st.composite
def mutated(draw: st.DrawFn, doc: dict) -> object:
    if draw(st.integers(0, 19)) == 0:
        return draw(VALUE)  # the whole document replaced (list, string, number...)
    d = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(d)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        try:
            d = _set(d, path, _DELETE if draw(st.booleans()) and not path[-1].isdigit() else draw(VALUE))
        except (KeyError, IndexError, TypeError, ValueError):
            pass  # an earlier mutation changed the shape under this path
    return d


_TMP = Path(tempfile.mkdtemp(prefix="btseg-fuzz-"))
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_all(root: Path) -> None:
    pkg = load_package(root, check_architecture=False)
    pkg.artifacts()


@FUZZ
@given(doc=mutated(MODEL) if MODEL else st.none())
def test_fuzz_model_json_loads_or_raises_typed_error(doc):
    root = _write(_TMP / "m", doc, MANIFEST)
    try:
        _load_all(root)
    except ArtifactError as e:
        assert str(e).startswith(str(root)) and "\n" not in str(e)  # one line naming the file


@FUZZ
@given(doc=mutated(MANIFEST) if MANIFEST else st.none())
def test_fuzz_manifest_loads_or_raises_typed_error(doc):
    root = _write(_TMP / "a", MODEL, doc)
    try:
        _load_all(root)
    except ArtifactError as e:
        assert str(e).startswith(str(root / "manifest.json")) and "\n" not in str(e)


def teardown_module() -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.mark.parametrize("value, ok", [
    (0, True), (3, True), ([], True), ([{"file": "benign/benign (5)_mask.png", "reason": "mask size 64x64 differs"}], True),
    (-1, False), ("three", False), (["benign (5).png"], False), ([{"file": "a.png"}], False),
    ([{"file": "a.png", "reason": 7}], False), (True, False),
])
def test_data_skipped_records_validated(value, ok):
    from btseg.schema import check_model_json

    doc = _set(MODEL, "data.skipped", value)
    if ok:
        assert check_model_json(doc, "model.json")["data"]["skipped"] == value
    else:
        with pytest.raises(SchemaError, match="model.json: data.skipped"):
            check_model_json(doc, "model.json")
