"""Segmenter: artifact choice and refusals, preprocessing parity, batch/stream, threads."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from btseg.preprocess import preprocess
from btseg.errors import ArtifactError, DataError
from btseg.metrics import dice
from btseg.package import load_package
from btseg.runtime import Segmentation, Segmenter


def _edit_manifest(root, fn):
    path = root / "manifest.json"
    man = json.loads(path.read_text())
    for a in man["artifacts"]:
        fn(a)
    path.write_text(json.dumps(man))


def test_auto_picks_a_verified_artifact_on_cpu(exported_package):
    info = Segmenter.load(exported_package, threads=1).info()
    assert (info["backend"], info["target"], info["precision"]) == ("openvino", "openvino", "fp32")
    assert info["verification"] == "passed"


def test_auto_without_artifacts_runs_the_weights(tiny_package):
    info = Segmenter.load(tiny_package, threads=1).info()
    assert info["backend"] == "torch" and info["artifact"] is None


def test_auto_prefers_passed_over_unverified(copy_package):
    root = copy_package()
    _edit_manifest(root, lambda a: a["verification"].update(status="skipped") if a["target"] == "openvino" else None)
    assert Segmenter.load(root, threads=1).info()["target"] == "onnx"


def test_tampered_artifact_is_refused(copy_package):
    root = copy_package()
    art = load_package(root).artifact("onnx", "fp32")
    with open(root / art.file, "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        Segmenter.load(root, backend="onnxruntime")
    with pytest.raises(ArtifactError, match="sha256"):
        Segmenter.load(root, target="onnx", precision="fp32")


def test_failed_artifacts_are_refused_or_skipped(copy_package):
    root = copy_package()
    _edit_manifest(root, lambda a: a.update(status="failed") if a["target"] == "openvino" else None)
    with pytest.raises(ArtifactError, match="status 'failed'"):
        Segmenter.load(root, target="openvino", precision="fp32")
    assert Segmenter.load(root, threads=1).info()["target"] == "onnx"
    _edit_manifest(root, lambda a: a["verification"].update(status="failed"))
    with pytest.raises(ArtifactError, match="failed verification"):
        Segmenter.load(root, target="onnx", precision="fp32")
    with pytest.raises(ArtifactError, match="no usable"):
        Segmenter.load(root, backend="onnxruntime")


def test_missing_artifact_is_an_artifact_error(exported_package):
    with pytest.raises(ArtifactError, match="no usable onnx/int8"):
        Segmenter.load(exported_package, target="onnx", precision="int8")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_network_input_is_transforms_preprocess(exported_package, images, backend):
    """The runtime feeds the backend exactly what training's preprocessing produces."""
    seg = Segmenter.load(exported_package, backend=backend, threads=1)
    fed, infer = [], seg.backend.infer
    seg.backend.infer = lambda x: (fed.append(x.copy()), infer(x))[1]
    for im in images:
        seg.segment(im)
    seg.segment_batch(images)
    expected = [preprocess(im, load_package(exported_package).config.preprocess)[None] for im in images]
    for got, want in zip(fed, expected):
        assert got.dtype == np.float32 and np.array_equal(got, want)
    assert np.array_equal(fed[-1], np.concatenate(expected))


def test_result_shape_types_and_timings(exported_package, images):
    seg = Segmenter.load(exported_package, backend="onnxruntime", threads=1)
    rgba = np.dstack([np.repeat(images[0][..., None], 3, 2), np.full(images[0].shape, 255, np.uint8)])
    for im in (images[0], images[1], rgba, images[0].astype(np.uint16) * 257, images[0].astype(np.float32) / 255):
        r = seg.segment(im, spacing_mm=0.1)
        assert isinstance(r, Segmentation) and r.mask.shape == r.prob.shape == im.shape[:2]
        assert r.area_mm2 == pytest.approx(r.area_px * 0.01)
        assert set(r.timings) == {"preprocess_ms", "infer_ms", "postprocess_ms", "total_ms"}
        assert r.timings["total_ms"] >= r.timings["infer_ms"] > 0
    # a uint16 frame scaled like its uint8 source segments the same (up to resize rounding)
    a, b = seg.segment(images[0]), seg.segment(images[0].astype(np.uint16) * 257)
    assert dice(a.mask, b.mask) > 0.99


def test_stream_and_batch_equal_segment(exported_package, images):
    seg = Segmenter.load(exported_package, backend="onnxruntime", threads=1)
    single = [seg.segment(im) for im in images]
    for other in (list(seg.stream(iter(images))), seg.segment_batch(images)):
        for a, b in zip(single, other):
            assert np.array_equal(a.mask, b.mask) and np.allclose(a.prob, b.prob, atol=1e-6)
    with pytest.raises(DataError, match="empty batch"):
        seg.segment_batch([])


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "torch"])
def test_eight_threads_give_the_sequential_results(exported_package, images, backend):
    seg = Segmenter.load(exported_package, backend=backend, threads=1)
    frames = images * 4
    sequential = [seg.segment(im) for im in frames]
    start = threading.Barrier(8)

    def worker(k: int) -> list[Segmentation]:
        start.wait()
        order = list(range(len(frames)))[k:] + list(range(len(frames)))[:k]  # different frames at once
        got = {i: seg.segment(frames[i]) for i in order}
        return [got[i] for i in range(len(frames))]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    for res in results:
        for a, b in zip(sequential, res):
            assert np.array_equal(a.mask, b.mask) and np.array_equal(a.prob, b.prob)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 10), np.uint8), "empty"),
    (np.zeros((4, 4, 4, 4), np.uint8), "shape"),
    (np.zeros(10, np.uint8), "shape"),
    (np.zeros((8, 8, 2), np.uint8), "shape"),
    (np.full((8, 8), np.nan, np.float32), "NaN"),
    (np.full((8, 8), np.inf, np.float32), "NaN or inf"),
    (np.zeros((8, 8), np.int32), "dtype int32"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_arrays_are_data_errors(tiny_package, bad, match):
    seg = Segmenter.load(tiny_package, backend="torch", threads=1)
    with pytest.raises(DataError, match=match):
        seg.segment(bad)


def test_runs_with_the_options_it_was_verified_with(exported_package):
    """OpenVINO may pick bf16 on this CPU; the runtime reuses the hint export verified with."""
    from btseg.runtime.segmenter import verified_options

    rec = load_package(exported_package).artifact("openvino", "fp32")
    hint = verified_options(rec, "openvino").get("precision_hint")
    if hint is None:
        pytest.skip("export recorded no OpenVINO options")
    info = Segmenter.load(exported_package, backend="openvino", target="openvino", threads=1).info()
    assert info["backend_info"]["inference_precision_hint"] == hint


def test_onnx_artifact_is_also_verified_on_openvino_and_refused_there_if_it_failed(copy_package):
    root = copy_package()
    man = json.loads((root / "manifest.json").read_text())
    onnx = next(a for a in man["artifacts"] if a["id"] == "onnx-fp32")
    assert onnx["extra"]["also_verified"]["openvino"]["status"] == "passed"
    assert onnx["extra"]["also_verified"]["openvino"]["dice_vs_torch"] > 0.999
    onnx["extra"]["also_verified"]["openvino"]["status"] = "failed"
    (root / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ArtifactError, match="failed verification against PyTorch on that backend"):
        Segmenter.load(root, backend="openvino", target="onnx", precision="fp32")
    # onnxruntime, where it passed, still runs it; openvino falls back to its own IR
    assert Segmenter.load(root, backend="onnxruntime").info()["target"] == "onnx"
    assert Segmenter.load(root, backend="openvino").info()["target"] == "openvino"
