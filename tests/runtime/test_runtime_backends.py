"""Backends run for real: parity against torch, info(), unavailable backends, TensorRT guards."""

from __future__ import annotations

import numpy as np
import pytest

from btseg.errors import ArtifactError, BackendUnavailableError
from btseg.metrics import dice
from btseg.runtime import Segmenter
from btseg.runtime.backend import load_backend


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(dice(a, b))


def _artifact(root, target: str):
    from btseg.package import load_package

    pkg = load_package(root)
    return pkg.artifact_path(pkg.artifact(target, "fp32"))


@pytest.fixture(scope="module")
def reference(exported_package, images):
    seg = Segmenter.load(exported_package, backend="torch", threads=2)
    return [seg.segment(im) for im in images]


@pytest.mark.parametrize("backend,target", [("onnxruntime", "onnx"), ("openvino", "openvino"),
                                            ("openvino", "onnx")])
def test_fp32_parity_with_torch(exported_package, images, reference, backend, target):
    seg = Segmenter.load(exported_package, backend=backend, target=target, precision="fp32", threads=2)
    out = [seg.segment(im) for im in images]
    info = seg.info()
    # this CPU may run an FP32 IR in bf16 (AMX / AVX512-BF16): tolerance follows what really ran
    tol = 2e-2 if info["inference_precision"] in ("bf16", "f16") else 1e-4
    for ref, got in zip(reference, out):
        assert 0.2 < ref.mask.mean() < 0.8, "fixture should give a non-trivial mask"
        assert _dice(ref.mask, got.mask) >= (0.999 if tol < 1e-3 else 0.99)
        assert float(np.abs(ref.prob - got.prob).max()) < tol


def test_openvino_forced_f32_matches_torch_closely(exported_package, images, reference):
    seg = Segmenter.load(exported_package, backend="openvino", target="openvino", threads=2, precision_hint="f32")
    assert seg.info()["inference_precision"] == "f32"
    for ref, im in zip(reference, images):
        got = seg.segment(im)
        assert _dice(ref.mask, got.mask) >= 0.999
        assert float(np.abs(ref.prob - got.prob).max()) < 1e-4


def test_info_reports_what_runs(exported_package):
    ort = Segmenter.load(exported_package, backend="onnxruntime", threads=2).info()
    assert ort["verification"] == "passed"
    assert ort["providers"] == ["CPUExecutionProvider"] and ort["threads"] == 2
    assert ort["backend"] == "onnxruntime" and ort["target"] == "onnx" and ort["precision"] == "fp32"
    ov = Segmenter.load(exported_package, backend="openvino", threads=2).info()
    assert ov["target"] == "openvino", "backend=openvino prefers its own IR over the ONNX file"
    assert ov["inference_precision"] in ("f32", "bf16", "f16") and ov["providers"] == ["CPU"]
    assert sum(ov["backend_info"]["runtime_precisions"].values()) > 0


def test_batch_inference_equals_single(exported_package, images):
    for name in ("onnxruntime", "openvino", "torch"):
        seg = Segmenter.load(exported_package, backend=name, threads=1)
        batch = seg.segment_batch(images)
        for im, b in zip(images, batch):
            np.testing.assert_allclose(seg.segment(im).prob, b.prob, atol=1e-5)


def test_onnxruntime_cuda_missing_names_the_wheel(exported_package):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        load_backend("onnxruntime", _artifact(exported_package, "onnx"), device="cuda")


def test_openvino_missing_device_is_unavailable(exported_package):
    import openvino as ov

    if any(d.startswith("NPU") for d in ov.Core().available_devices):
        pytest.skip("this machine has an NPU")
    with pytest.raises(BackendUnavailableError, match="NPU"):
        load_backend("openvino", _artifact(exported_package, "openvino"), device="npu")


def test_tensorrt_missing_is_a_clear_error(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("tensorrt is installed here")
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not an engine")
    with pytest.raises(BackendUnavailableError, match="'tensorrt'.*pip install"):
        load_backend("tensorrt", engine, device="cuda")


def test_tensorrt_refuses_an_engine_from_another_version_or_gpu():
    from btseg.runtime.tensorrt_backend import check_compatible

    built = {"tensorrt": "10.3.0.26", "gpu": "NVIDIA A100-SXM4-40GB", "compute_capability": "8.0"}
    check_compatible(built, "10.3.0.30", "NVIDIA A100-SXM4-40GB", (8, 0))  # build number may differ
    with pytest.raises(ArtifactError, match="rebuild on the target"):
        check_compatible(built, "10.8.0", "NVIDIA A100-SXM4-40GB", (8, 0))
    with pytest.raises(ArtifactError, match="rebuild on the target"):
        check_compatible(built, "10.3.0", "NVIDIA GeForce RTX 4090", (8, 9))


def test_tensorrt_engine_parity_on_a_gpu(copy_package, images, image_dir):
    pytest.importorskip("tensorrt", reason="TensorRT not installed (no NVIDIA GPU here); runs on a CUDA machine")
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings not installed (needed by the TensorRT backend)")
    from conftest import export

    root = copy_package()
    export(root, image_dir, ["tensorrt"], ["fp32"])
    ref = Segmenter.load(root, backend="torch", device="cpu")
    trt = Segmenter.load(root, backend="tensorrt", device="cuda")
    assert trt.info()["backend"] == "tensorrt"
    for im in images:
        a, b = ref.segment(im), trt.segment(im)
        assert _dice(a.mask, b.mask) >= 0.999
        assert float(np.abs(a.prob - b.prob).max()) < 1e-2
    batch = trt.segment_batch(images)
    assert all(_dice(x.mask, trt.segment(im).mask) == 1.0 for x, im in zip(batch, images))


def test_onnxruntime_reports_the_graph_precision_not_the_io_dtype(tmp_path, tiny_package, image_dir):
    import shutil

    from btseg.export import run_export
    from btseg.package import load_package
    from btseg.runtime.onnxruntime_backend import OnnxRuntimeBackend

    root = tmp_path / "pkg"
    shutil.copytree(tiny_package, root)
    run_export(root, ["onnx"], ["fp16", "int8"], calib_data=image_dir, calib_size=6, verify=False)
    pkg = load_package(root)
    for precision in ("fp16", "int8"):
        be = OnnxRuntimeBackend.load(pkg.artifact_path(pkg.artifact("onnx", precision)), threads=1)
        assert be.info()["inference_precision"] == precision
