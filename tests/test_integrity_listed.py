"""Every file a backend opens is in the artifact record (btseg.integrity.check_listed) and
ONNX external-data references are found without loading tensors (btseg.onnx_refs).

Fault injection on copies of the bundled package: an IR record without its ``.bin``, an
ONNX with an unlisted external-data file, an external location leaving the package; the
runtime (real ONNX Runtime / OpenVINO) and ``btseg-check`` refuse each.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg import defaults
from btseg.errors import IntegrityError
from btseg.integrity import record_files
from btseg.onnx_refs import external_locations
from btseg.runtime import Segmenter

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture
def pkg(tmp_path):
    dst = tmp_path / "pkg"
    shutil.copytree(defaults.DEFAULT_PACKAGE, dst)
    return dst


def _rerecord(pkg, art_id, rels):
    doc = json.loads((pkg / "manifest.json").read_text())
    a = next(a for a in doc["artifacts"] if a["id"] == art_id)
    a["files"] = record_files(pkg, rels)
    main = next(f for f in a["files"] if f["file"] == a["file"])
    a["sha256"], a["size_bytes"] = main["sha256"], sum(f["size_bytes"] for f in a["files"])
    (pkg / "manifest.json").write_text(json.dumps(doc))


def _check_cli(root):
    return subprocess.run([sys.executable, "-m", "btseg.cli.check", str(root)], capture_output=True, text=True,
                          timeout=120)


def _externalize(pkg, location="student-fp32.onnx.data"):
    m = onnx.load(str(pkg / "student-fp32.onnx"))
    onnx.save(m, str(pkg / "student-fp32.onnx"), save_as_external_data=True, location=location,
              size_threshold=1024)


def test_an_ir_record_without_its_bin_is_refused(pkg):
    _rerecord(pkg, "openvino-fp32", ["openvino-fp32/model.xml"])
    with pytest.raises(IntegrityError, match=r"model.bin: openvino/fp32 opens this file but its record does not list"):
        Segmenter.load(pkg, target="openvino", precision="fp32", threads=1)
    r = _check_cli(pkg)
    assert r.returncode == 2 and "openvino-fp32/model.bin" in r.stderr and "does not list" in r.stderr


def test_an_onnx_with_unlisted_external_data_is_refused_and_runs_once_listed(pkg):
    _externalize(pkg)
    _rerecord(pkg, "onnx-fp32", ["student-fp32.onnx"])
    for backend in ("onnxruntime", "openvino"):
        with pytest.raises(IntegrityError, match="student-fp32.onnx.data: onnx/fp32 opens this file"):
            Segmenter.load(pkg, target="onnx", precision="fp32", backend=backend, threads=1)
    assert _check_cli(pkg).returncode == 2
    _rerecord(pkg, "onnx-fp32", ["student-fp32.onnx", "student-fp32.onnx.data"])
    seg = Segmenter.load(pkg, target="onnx", precision="fp32", backend="onnxruntime", threads=1)
    assert seg.segment(np.full((64, 64), 100, np.uint8)).mask.shape == (64, 64)
    data = pkg / "student-fp32.onnx.data"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="student-fp32.onnx.data: sha256"):
        Segmenter.load(pkg, target="onnx", precision="fp32", backend="onnxruntime", threads=1)


@pytest.mark.parametrize("location", ["../outside.data", "/etc/passwd", "a/../../x"])
def test_external_data_leaving_the_package_is_refused(pkg, location):
    m = onnx.load(str(pkg / "student-fp32.onnx"))
    init = m.graph.initializer[0]
    init.data_location = TensorProto.EXTERNAL
    init.external_data.add(key="location", value=location)
    init.ClearField("raw_data")
    (pkg / "student-fp32.onnx").write_bytes(m.SerializeToString())
    _rerecord(pkg, "onnx-fp32", ["student-fp32.onnx"])
    with pytest.raises(IntegrityError, match="leaves the package"):
        Segmenter.load(pkg, target="onnx", precision="fp32", backend="onnxruntime", threads=1)


# -- the protobuf walk, against onnx's own traversal ---------------------------------------

def _ext(name, loc):
    t = numpy_helper.from_array(np.zeros(2, np.float32), name)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=loc)
    t.external_data.add(key="offset", value="0")
    return t


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["init", "attr", "attrs", "sparse", "if-body", "loop-in-if", "function"]),
                min_size=0, max_size=8))
def test_every_place_a_tensor_can_sit_is_found(places):
    from onnx.external_data_helper import _get_all_tensors

    nodes, inits, sparse, funcs, want = [], [], [], [], []
    for i, where in enumerate(places):
        loc = f"d{i}.bin"
        want.append(loc)
        t = _ext(f"t{i}", loc)
        if where == "init":
            inits.append(t)
        elif where == "attr":
            nodes.append(helper.make_node("Constant", [], [f"c{i}"], value=t))
        elif where == "attrs":
            node = helper.make_node("Foo", [], [f"c{i}"], domain="x")
            node.attribute.append(helper.make_attribute("ts", [t]))
            nodes.append(node)
        elif where == "sparse":
            idx = numpy_helper.from_array(np.array([0], np.int64), f"i{i}")
            sparse.append(helper.make_sparse_tensor(t, idx, [4]))
        else:
            body = helper.make_graph([helper.make_node("Constant", [], ["o"], value=t)], "b", [],
                                     [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
            if where == "loop-in-if":
                body = helper.make_graph([helper.make_node("If", ["c"], ["o"], then_branch=body, else_branch=body)],
                                         "outer", [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
            if where == "function":
                funcs.append(helper.make_function("x", f"f{i}", [], ["o"],
                                                  [helper.make_node("Constant", [], ["o"], value=t)],
                                                  [helper.make_opsetid("", 17)]))
                continue
            nodes.append(helper.make_node("If", ["c"], [f"c{i}"], then_branch=body, else_branch=body))
    graph = helper.make_graph(nodes, "g", [], [], inits, sparse_initializer=sparse)
    model = helper.make_model(graph, functions=funcs)
    got = external_locations(model.SerializeToString())
    assert sorted(got) == sorted(want)
    theirs = {e.value for t in _get_all_tensors(model) for e in t.external_data if e.key == "location"}
    assert theirs <= set(got)  # at least what onnx itself finds (it skips functions and sparse)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.booleans(), st.binary(max_size=40))
def test_garbage_is_an_integrity_error_or_no_reference(data, key, tail):
    data = data + (b"location" + tail if key else b"")  # past the fast path: the full walk
    try:
        assert isinstance(external_locations(data), list)
    except IntegrityError as e:
        assert "not a readable ONNX model" in str(e)
