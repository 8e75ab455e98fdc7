"""The presence decision as part of a package: model.json round trip and range checks, the
same decision from torch, ONNX Runtime and OpenVINO on one package (for real), an old
package without it, and btseg-predict's JSON record and table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from btseg.errors import SchemaError
from btseg.package import load_package
from btseg.runtime import Segmenter
from btseg.runtime.postprocess import PostProcess


def _with_presence(root, presence):
    """Record ``presence`` in the package's model.json, as training does."""
    pkg = load_package(root)
    pkg.config.postprocess = {**pkg.config.postprocess, "presence": presence}
    (root / "model.json").write_text(json.dumps(pkg.config.to_dict()))
    return root


@pytest.fixture(scope="module")
def scores(exported_package, images):
    """torch's presence score (mass: probability summed over a component / image pixels) per test image."""
    seg = Segmenter.load(exported_package, backend="torch", threads=1)
    seg.post = PostProcess(seg.post.threshold, {"presence": {"score": "mass", "min_area_frac": 0.0, "threshold": 1.0}})
    return [seg.segment(im).presence for im in images]


def test_every_backend_decides_the_same(copy_package, images, scores):
    s = sorted(scores)
    gaps = [(b - a, (a + b) / 2) for a, b in zip(s, s[1:])]
    gap, thr = max(gaps)
    assert gap > 1e-3, f"fixture scores too close to split: {s}"
    root = _with_presence(copy_package(), {"score": "mass", "min_area_frac": 0.0, "threshold": thr})
    want = [x >= thr for x in scores]
    assert any(want) and not all(want), "the threshold must split the images"
    runs = {"torch": Segmenter.load(root, backend="torch", threads=1),
            "onnxruntime": Segmenter.load(root, backend="onnxruntime", target="onnx", precision="fp32", threads=1),
            "openvino": Segmenter.load(root, backend="openvino", target="openvino", threads=1,
                                       precision_hint="f32")}
    for name, seg in runs.items():
        assert seg.info()["presence"]["threshold"] == thr
        out = [seg.segment(im) for im in images]
        assert [r.lesion_present for r in out] == want, name
        assert all(r.area_px == 0 for r in out if not r.lesion_present), name
        assert np.allclose([r.presence for r in out], scores, atol=1e-3), name
    batch = runs["onnxruntime"].segment_batch(images)
    assert [r.lesion_present for r in batch] == want


def test_model_json_round_trip_and_ranges(copy_package):
    spec = {"score": "peak", "min_area_frac": 0.002, "threshold": 0.8, "target_sensitivity": 0.95,
            "calibration": {"split": "val", "reached": True}}
    root = _with_presence(copy_package(), spec)
    assert load_package(root).config.postprocess["presence"] == spec
    doc = json.loads((root / "model.json").read_text())
    for field, bad in (("threshold", 0.0), ("threshold", 1.01), ("min_area_frac", -0.1), ("min_area_frac", 0.9),
                       ("score", "median"), ("target_sensitivity", 2.0), ("calibration", [1])):
        d = json.loads(json.dumps(doc))
        d["postprocess"]["presence"][field] = bad
        (root / "model.json").write_text(json.dumps(d))
        with pytest.raises(SchemaError, match=f"postprocess.presence.{field}"):
            load_package(root)


def test_old_package_without_presence_is_not_gated(copy_package, images):
    root = copy_package()  # written as every package before the presence decision: no postprocess.presence
    assert "presence" not in json.loads((root / "model.json").read_text())["postprocess"]
    seg = Segmenter.load(root, backend="onnxruntime", threads=1)
    assert seg.info()["presence"] is None
    for im in images:
        r = seg.segment(im)
        assert r.lesion_present == (r.area_px > 0)
        assert r.presence == pytest.approx(float(r.prob[r.mask].max()) if r.area_px else 0.0)


def test_predict_json_and_table_carry_the_decision(copy_package, image_dir, scores, tmp_path, monkeypatch):
    from btseg.cli.common import console
    from btseg.cli.predict import main

    monkeypatch.setattr(console, "_width", 250)  # the whole table, not cells cut to 80 columns
    thr = float(np.median(scores)) + 1e-6
    root = _with_presence(copy_package(), {"score": "mass", "min_area_frac": 0.0, "threshold": thr})
    res = CliRunner().invoke(main, [str(image_dir), "--model", str(root), "--out", str(tmp_path / "o"),
                                    "--backend", "onnxruntime", "--no-overlay", "--json"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(recs) == 6 and all(isinstance(r["lesion_present"], bool) for r in recs)
    assert {r["lesion_present"] for r in recs} == {True, False}
    for r in recs:
        assert r["lesion_present"] == (r["presence"] >= thr) and (r["area_px"] > 0) == r["lesion_present"]
        assert json.loads((tmp_path / "o" / f"{r['name']}.json").read_text())["lesion_present"] == r["lesion_present"]
    res = CliRunner().invoke(main, [str(image_dir), "--model", str(root), "--out", str(tmp_path / "t"),
                                    "--backend", "onnxruntime", "--no-overlay"])
    assert res.exit_code == 0 and "lesion (presence)" in res.output
    assert " no (" in res.output and " yes (" in res.output
