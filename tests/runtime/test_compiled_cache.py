"""What runs is what was verified: the OpenVINO compiled-model cache (btseg.runtime.cache).

Fault injection on real OpenVINO blobs: bytes flipped in a cached blob, a blob from another
network put in its place, a changed ONNX external-data file, a FIFO or a /dev/zero link
where the blob, its record or the select record should be.  Each is refused before import
and rebuilt from the verified files (the state says which), never run, never hung.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from btseg.runtime import cache as C

X = np.linspace(-1, 1, 256, dtype=np.float32).reshape(1, 1, 16, 16)


def _ir(folder: Path, scale: float = 1.0) -> Path:
    """A tiny real IR written by OpenVINO (one conv)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 1, 16, 16], np.float32, name="image")
    w = ops.constant(scale * np.random.default_rng(0).standard_normal((1, 1, 3, 3)).astype(np.float32))
    model = ov.Model([ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])], [x], "tiny")
    xml = folder / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def _load(xml: Path, root: Path, **kw):
    from btseg.runtime.openvino_backend import OpenVINOBackend

    return OpenVINOBackend.load(xml, threads=1, cache=root, **kw)


def _entry(root: Path) -> tuple[Path, Path]:
    (blob,) = root.glob("*/*.blob")
    return blob, blob.with_suffix(".json")


def _in_time(fn, seconds=30):
    out: list = []

    def run():
        try:
            out.append((fn(), None))
        except Exception as e:  # re-raised on the test's thread
            out.append((None, e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert out, "hung (a FIFO or device was read)"
    if out[0][1] is not None:
        raise out[0][1]
    return out[0][0]


def test_a_hit_imports_the_recorded_blob(tmp_path):
    xml, root = _ir(tmp_path), tmp_path / "cache"
    first = _load(xml, root)
    assert first.info()["model_cache"].endswith("(written)")
    blob, rec = _entry(root)
    doc = json.loads(rec.read_text())
    assert doc["artifact"] == blob.parent.name == C.artifact_key(xml) and doc["size_bytes"] == blob.stat().st_size
    again = _load(xml, root)
    assert again.info()["model_cache"].endswith("(imported, sha256 verified)")
    np.testing.assert_array_equal(again.infer(X), first.infer(X))


@pytest.mark.parametrize("damage", ["flip", "other-network", "no-record", "record-of-other-artifact", "truncate"])
def test_a_changed_blob_is_rebuilt_from_the_verified_files(tmp_path, damage):
    xml, root = _ir(tmp_path), tmp_path / "cache"
    want = _load(xml, root).infer(X)
    blob, rec = _entry(root)
    if damage == "flip":
        data = bytearray(blob.read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 16):
            data[i] ^= 0xFF
        blob.write_bytes(bytes(data))
    elif damage == "other-network":  # a valid blob of another network (x3 weights), same name
        (tmp_path / "other").mkdir()
        other_root = tmp_path / "other-cache"
        _load(_ir(tmp_path / "other", 3.0), other_root)
        blob.write_bytes(_entry(other_root)[0].read_bytes())
    elif damage == "no-record":
        rec.unlink()
    elif damage == "record-of-other-artifact":
        rec.write_text(json.dumps({**json.loads(rec.read_text()), "artifact": "0" * 64}))
    else:
        blob.write_bytes(blob.read_bytes()[:100])
    with pytest.warns(C.CacheRebuiltWarning):
        be = _load(xml, root)
    state = be.info()["model_cache"]
    assert "rebuilt from the verified files" in state and "written" in state, state
    np.testing.assert_allclose(be.infer(X), want, rtol=1e-6)  # never the changed network
    assert _load(xml, root).info()["model_cache"].endswith("(imported, sha256 verified)")


@pytest.mark.parametrize("where", ["blob", "record"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_a_fifo_or_device_link_in_the_cache_is_refused_at_once(tmp_path, where, kind):
    xml, root = _ir(tmp_path), tmp_path / "cache"
    want = _load(xml, root).infer(X)
    target = _entry(root)[0 if where == "blob" else 1]
    target.unlink()
    os.mkfifo(target) if kind == "fifo" else os.symlink("/dev/zero", target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", C.CacheRebuiltWarning)
        be = _in_time(lambda: _load(xml, root))
    assert "rebuilt from the verified files" in be.info()["model_cache"]
    assert "regular file" in be.info()["model_cache"] or "symlink" in be.info()["model_cache"]
    np.testing.assert_allclose(be.infer(X), want, rtol=1e-6)
    assert target.is_file() and not target.is_symlink()


def test_a_changed_onnx_external_data_file_gets_a_new_entry(tmp_path):
    """The key covers every file OpenVINO opens: an ONNX's external data too."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((1, 1, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 16, 16])], [w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path,
              save_as_external_data=True, location="m.data", size_threshold=0)
    root = tmp_path / "cache"
    first = _load(path, root).infer(X)
    data = tmp_path / "m.data"
    data.write_bytes((np.frombuffer(data.read_bytes(), np.float32) * 2).tobytes())
    changed = _load(path, root)
    np.testing.assert_allclose(changed.infer(X), 2 * first, rtol=1e-5)  # the old blob was not used
    assert len(list(root.iterdir())) == 2


def test_the_segmenter_binds_the_entry_to_the_record_files(tmp_path, monkeypatch):
    from btseg import defaults
    from btseg.package import load_package
    from btseg.runtime import Segmenter

    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BTSEG_OV_CACHE", raising=False)
    seg = Segmenter.load(defaults.DEFAULT_PACKAGE, target="openvino", precision="int8", backend="openvino",
                         threads=1)
    rec = load_package(defaults.DEFAULT_PACKAGE).artifact("openvino", "int8")
    assert len(rec.files) == 2
    assert seg.info()["model_cache"].startswith(f"on: {tmp_path / 'cache' / C.binding(rec.files)}")


def test_read_verified_refuses_bytes_that_differ_from_the_record(tmp_path):
    from btseg.errors import ArtifactError, IntegrityError

    f = tmp_path / "a.engine"
    f.write_bytes(b"engine bytes")
    files = [{"file": "a.engine", "sha256": "0" * 64, "size_bytes": 12}]
    with pytest.raises(IntegrityError, match="differs from the verified"):
        C.read_verified(f, files)
    assert C.read_verified(f, None) == b"engine bytes"
    f.unlink()
    os.mkfifo(f)
    with pytest.raises(ArtifactError, match="FIFO"):
        _in_time(lambda: C.read_verified(f, files))
