"""TensorRT: everything that runs without a GPU.

The ONNX files TensorRT builds from (FP16 with FP32 I/O, the TensorRT Q/DQ recipe), the
``--from-onnx`` checks made before any build, the timing-cache bookkeeping under every
failure TensorRT's API can report, the CUDA error path through the real cuda-bindings,
and the missing-tensorrt error.  The API conformance against the real TensorRT 10/11
bindings is in ``test_tensorrt_conformance.py``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError
from btseg.export import onnx as O
from btseg.export import tensorrt as trt_export
from btseg.export.quantize import load_images, quantize_onnx, quantize_onnx_tensorrt, tensorrt_qdq_problems
from btseg.export.plan import plan_jobs
from btseg.export.tensorrt import check_from_onnx

REASON = trt_export.probe()
SIZE = (64, 64)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, package, phantom) -> dict[str, Path]:
    """The trained student as FP32, FP16, ORT-INT8 and TensorRT-INT8 ONNX (64 px, dynamic batch)."""
    from btseg.package import load_package

    d = tmp_path_factory.mktemp("trt-onnx")
    model = load_package(package).build_model()
    spec = load_package(package).config.preprocess
    calib = load_images(phantom, 8).inputs(spec)
    files = {k: d / f"{k}.onnx" for k in ("fp32", "fp16", "ort-int8", "trt-int8", "static")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        O.export_onnx(model, SIZE, files["fp32"], {}, 18, True)
        O.export_onnx(model, SIZE, files["static"], {}, 18, False)
        O.to_fp16(files["fp32"], files["fp16"], {})
        quantize_onnx(files["fp32"], files["ort-int8"], calib, "minmax", {})
        quantize_onnx_tensorrt(files["fp32"], files["trt-int8"], calib, "minmax", {})
    return files


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def _inputs(phantom: Path, package: Path) -> np.ndarray:
    from btseg.package import load_package

    return np.concatenate(load_images(phantom, 4, "verification").inputs(load_package(package).config.preprocess))


def test_capabilities_cover_every_precision():
    jobs = plan_jobs(["tensorrt"], ["fp32", "fp16", "int8"], calib_method="entropy")
    assert [j.id for j in jobs] == ["tensorrt-fp32", "tensorrt-fp16", "tensorrt-int8"]


# -- the ONNX files a strongly typed network is built from ---------------------------------

def test_tensorrt_int8_graph_follows_tensorrt_rules(onnx_files):
    m = onnx.load(str(onnx_files["trt-int8"]))
    inits = {i.name: i for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert dqs, "no Q/DQ at all"
    for n in dqs:  # every DQ reads an INT8 weight or a QuantizeLinear's output: no INT32 bias
        src = inits.get(n.input[0])
        assert (src is not None and src.data_type == onnx.TensorProto.INT8) or \
            producers[n.input[0]].op_type == "QuantizeLinear", n.name
        zp = inits[n.input[2]]
        assert zp.data_type == onnx.TensorProto.INT8 and not onnx.numpy_helper.to_array(zp).any(), n.name
    weight_dqs = [n for n in dqs if n.input[0] in inits]
    for n in weight_dqs:  # per output channel: one scale per filter
        w, scale = (onnx.numpy_helper.to_array(inits[i]) for i in n.input[:2])
        assert scale.size == w.shape[0], n.name
    logits = producers["logits"]
    assert logits.op_type not in ("QuantizeLinear", "DequantizeLinear") and logits.op_type == "Conv"
    assert tensorrt_qdq_problems(m) == [] and trt_export.onnx_precision(onnx_files["trt-int8"]) == "int8"


def test_onnxruntime_recipe_is_what_tensorrt_rejects(onnx_files):
    """Why there are two recipes: ORT's default one holds an INT32 bias DQ and Q/DQ on logits."""
    problems = " ".join(tensorrt_qdq_problems(onnx.load(str(onnx_files["ort-int8"]))))
    assert "INT32" in problems and "graph output ['logits']" in problems


def test_tensorrt_int8_graph_stays_close_to_fp32(onnx_files, phantom, package):
    """On ONNX Runtime CPU, the TensorRT recipe stays within a bound of FP32.  TensorRT needs
    symmetric INT8 activations (zero point 0), so it cannot match ORT's CPU recipe (uint8
    asymmetric activations): the bounds are absolute.  The 2-second phantom student is rough:
    every foreground probability it gives lies between 0.5 and 0.75, so a Dice of its
    thresholded masks measures which near-threshold pixels cross 0.5 (it swung from 0.63 to
    0.49 when a bit-identical reordering of the student changed its training trajectory).
    What must hold is that INT8 moves probabilities little and never flips a pixel FP32 is
    sure of (|p - 0.5| > 0.25)."""
    x = _inputs(phantom, package)
    prob = lambda k: 1 / (1 + np.exp(-_run(onnx_files[k], x)))  # noqa: E731
    p32, trt = prob("fp32"), prob("trt-int8")
    sure = np.abs(p32 - 0.5) > 0.25
    assert sure.mean() > 0.5, "the fixture model is sure of too few pixels for this check"
    assert np.abs(trt - p32).mean() < 0.15
    assert ((trt >= 0.5) == (p32 >= 0.5))[sure].mean() >= 0.999


def test_fp16_onnx_has_fp32_io_and_matches_fp32_on_onnxruntime(onnx_files, phantom, package):
    m = onnx.load(str(onnx_files["fp16"]))
    f32 = onnx.TensorProto.FLOAT
    assert [v.type.tensor_type.elem_type for v in (*m.graph.input, *m.graph.output)] == [f32, f32]
    assert trt_export.onnx_precision(onnx_files["fp16"]) == "fp16"
    assert trt_export.onnx_precision(onnx_files["fp32"]) == "fp32"
    x = _inputs(phantom, package)
    y32, y16 = _run(onnx_files["fp32"], x), _run(onnx_files["fp16"], x)
    assert y16.dtype == np.float32 and y16.shape == y32.shape
    prob = lambda y: 1 / (1 + np.exp(-y))  # noqa: E731
    assert np.abs(prob(y16) - prob(y32)).max() < 2e-2


# -- --from-onnx: checked before anything is built ----------------------------------------

@pytest.mark.parametrize("file,precision,dynamic,match", [
    ("trt-int8", "fp32", False, "holds Q/DQ nodes.*is int8, not fp32"),
    ("trt-int8", "fp16", False, "is int8, not fp16"),
    ("fp16", "fp32", False, "computes in float16"),
    ("fp32", "int8", False, "needs a TensorRT Q/DQ ONNX, or an FP32 ONNX and --calib-data"),
    ("fp16", "int8", False, "needs a TensorRT Q/DQ ONNX"),
    ("ort-int8", "int8", False, "INT32"),
    ("static", "fp32", True, "batch axis is static"),
])
def test_from_onnx_refuses_what_it_cannot_build(onnx_files, file, precision, dynamic, match):
    with pytest.raises(ConfigError, match=match):
        check_from_onnx(onnx_files[file], [precision], dynamic, SIZE)


def test_from_onnx_accepts_what_it_can_build(onnx_files):
    for file, precision, dynamic in [("trt-int8", "int8", True), ("fp32", "fp32", True), ("static", "fp32", False),
                                     ("fp16", "fp16", True)]:
        assert check_from_onnx(onnx_files[file], [precision], dynamic, SIZE) == onnx_files[file]
    # an FP32 file is quantized on the board with the TensorRT recipe when there are images
    assert check_from_onnx(onnx_files["fp32"], ["int8"], True, SIZE, can_calibrate=True)


def test_from_onnx_bad_files(onnx_files, tmp_path):
    with pytest.raises(ArtifactError, match="file not found"):
        check_from_onnx(tmp_path / "nope.onnx", ["fp32"], False, SIZE)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a protobuf" * 10)
    with pytest.raises(ArtifactError, match="not a readable ONNX"):
        check_from_onnx(junk, ["fp32"], False, SIZE)
    with pytest.raises(ConfigError, match="input is 64x64.*32x32"):
        check_from_onnx(onnx_files["fp32"], ["fp32"], False, (32, 32))


# -- the timing cache: every return value TensorRT documents, injected ---------------------

from btseg.export.tensorrt_cache import sha_path, write_cache  # noqa: E402

class FakeConfig:
    """Fault injection over the three IBuilderConfig calls the cache uses (their names and
    keywords are held to the real API by test_tensorrt_conformance)."""

    def __init__(self, create=("ok", "ok"), accept=True, get="ok"):
        self.create, self.accept, self.get, self.attached = list(create), accept, get, None

    def create_timing_cache(self, data):
        what = self.create.pop(0)
        if what == "raise":
            raise RuntimeError("corrupt cache")
        return None if what == "none" else FakeCache(bytes(data))

    def set_timing_cache(self, cache, ignore_mismatch):
        ok = self.accept if cache.data else True
        self.attached = cache if ok else None
        return ok

    def get_timing_cache(self):
        return None if self.get == "none" else FakeCache(b"timings")


class FakeCache:
    def __init__(self, data):
        self.data = data

    def serialize(self):
        return self.data


@pytest.mark.parametrize("existing,config,events,reused,saved", [
    (None, FakeConfig(create=["ok"]), ["new"], False, True),
    (b"old", FakeConfig(), ["reused (3 bytes)"], True, True),
    (b"old", FakeConfig(create=["none", "ok"]), ["3 bytes TensorRT cannot read; not used", "new"], False, True),
    (b"old", FakeConfig(create=["raise", "ok"]), ["3 bytes TensorRT cannot read; not used", "new"], False, True),
    (b"old", FakeConfig(accept=False), ["rejected by TensorRT (another GPU or TensorRT version); not used", "new"],
     False, True),
    (None, FakeConfig(create=["none"]), ["TensorRT could not create a new cache; built without one"], False, True),
    (None, FakeConfig(create=["ok"], get="none"), ["new", "TensorRT returned no cache after the build; not saved"],
     False, False),
])
def test_timing_cache_records_what_happened(tmp_path, existing, config, events, reused, saved):
    path = tmp_path / trt_export.TIMING_CACHE
    if existing is not None:
        write_cache(path, existing)
    tc = trt_export.TimingCache(path)
    tc.attach(config)
    tc.save(config)
    assert tc.record() == {"file": trt_export.TIMING_CACHE, "reused": reused, "saved": saved, "events": events}
    assert (path.is_file() and path.read_bytes() == b"timings") == saved  # no half-written or fake file


@pytest.mark.parametrize("damage,why", [
    ("flip", "does not match its record"), ("no-record", "missing"), ("fifo", "FIFO"),
    ("dev-zero-link", "symlink"), ("huge", "more than"),
])
def test_a_timing_cache_that_differs_from_its_record_is_not_handed_to_tensorrt(tmp_path, damage, why, monkeypatch):
    import os
    import threading

    from btseg.export import tensorrt_cache

    path = tmp_path / trt_export.TIMING_CACHE
    write_cache(path, b"old timings")
    if damage == "flip":
        path.write_bytes(b"old timingS")
    elif damage == "no-record":
        sha_path(path).unlink()
    elif damage == "huge":
        monkeypatch.setattr(tensorrt_cache, "MAX_BYTES", 4)
    else:
        path.unlink()
        os.mkfifo(path) if damage == "fifo" else os.symlink("/dev/zero", path)
    tc, cfg = trt_export.TimingCache(path), FakeConfig(create=["ok"])
    t = threading.Thread(target=tc.attach, args=(cfg,), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "reading the timing cache hung"
    assert not tc.reused and tc.events[-1] == "new" and why in tc.events[0] and "not used" in tc.events[0], tc.events
    assert cfg.attached is not None and cfg.attached.data == b""  # a fresh cache, never the file's bytes


def test_timing_cache_unwritable_keeps_the_build(tmp_path):
    blocked = tmp_path / trt_export.TIMING_CACHE
    (blocked / "x").mkdir(parents=True)  # a directory where the file should go: the write fails
    tc = trt_export.TimingCache(blocked)
    cfg = FakeConfig(create=["ok"])
    tc.attach(cfg)
    tc.save(cfg)  # no exception: the engine is not lost over its cache
    rec = tc.record()
    assert not rec["saved"] and rec["events"][-1].startswith("could not be written"), rec


def test_timing_cache_off_records_nothing():
    tc = trt_export.TimingCache(None)
    tc.attach(FakeConfig(create=[]))
    tc.save(FakeConfig(create=[]))
    assert tc.record() is None


# -- CUDA and the missing-package errors ---------------------------------------------------

def test_cuda_errors_are_typed_through_the_real_bindings():
    cudart = pytest.importorskip("cuda.bindings.runtime")
    from btseg.runtime.tensorrt_backend import cuda_call, open_device

    if cudart.cudaGetDeviceCount()[0] == cudart.cudaError_t.cudaSuccess:
        pytest.skip("a CUDA device is present")
    with pytest.raises(BackendUnavailableError, match=r"tensorrt: no usable CUDA device 'cuda:0': cudaError\w+: "):
        open_device(cudart, "cuda:0")
    with pytest.raises(ConfigError, match="expected cuda"):
        open_device(cudart, "cpu")
    with pytest.raises(ArtifactError, match="copy: cudaError"):
        cuda_call(cudart, cudart.cudaMalloc(16), "copy", ArtifactError)


@pytest.mark.skipif(REASON is None, reason="tensorrt and a CUDA device are present")
def test_missing_tensorrt_is_a_clear_error(pkg_copy, phantom, cli):
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        trt_export.require_tensorrt()
    before = {p.name for p in pkg_copy.iterdir()}
    r = cli(pkg_copy, "--target", "tensorrt", "--precision", "fp16", "--verify-data", phantom)
    assert r.exit_code == 2
    assert f"tensorrt/fp16: {REASON}" in r.output and "Traceback" not in r.output
    assert {p.name for p in pkg_copy.iterdir()} == before


@pytest.mark.gpu
@pytest.mark.skipif(REASON is not None, reason=f"needs TensorRT >= 10, cuda-bindings and a CUDA device ({REASON})")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_and_verifies(pkg_copy, phantom, cli, precision):  # pragma: no cover - GPU only
    r = cli(pkg_copy, "--target", "tensorrt", "--precision", precision, "--calib-data", phantom,
            "--calib-size", "8", "--verify-data", phantom, "--verify-n", "4", "--tolerance", "int8=0.9")
    assert r.exit_code == 0, r.output
    from btseg.package import load_package

    rec = load_package(pkg_copy).artifact("tensorrt", precision)
    assert rec.extra["tensorrt"] and rec.extra["gpu"] and rec.extra["compute_capability"]
    assert rec.extra["strongly_typed"] and rec.extra["network_precision"] == precision
    assert rec.extra["timing_cache"]["saved"] and (pkg_copy / "tensorrt.timing.cache").is_file()


def test_pipeline_picks_the_onnx_each_tensorrt_precision_is_built_from(pkg_copy, phantom, onnx_files, tmp_path):
    """The files _build_tensorrt hands to TensorRT (the plan is prepared for the onnx
    target, which needs no GPU; onnx_file does not depend on the target)."""
    from btseg.export.pipeline import TENSORRT_INT8, Builder
    from btseg.export.plan import prepare

    plan = prepare(pkg_copy, ["onnx"], ["int8"], calib_data=phantom, calib_size=4, verify=False)
    b = Builder(plan, tmp_path)
    path, info = b.onnx_file(TENSORRT_INT8)
    assert info["recipe"] == "tensorrt" and tensorrt_qdq_problems(onnx.load(str(path))) == []
    assert trt_export.onnx_precision(b.onnx_file("fp16")[0]) == "fp16"
    plan.from_onnx = onnx_files["trt-int8"]  # a TensorRT Q/DQ file is used as it is
    assert Builder(plan, tmp_path / "a").onnx_file(TENSORRT_INT8)[0] == onnx_files["trt-int8"]
    plan.from_onnx = onnx_files["static"]  # an FP32 file is quantized here
    (tmp_path / "b").mkdir()
    path, info = Builder(plan, tmp_path / "b").onnx_file(TENSORRT_INT8)
    assert info["recipe"] == "tensorrt" and path.parent == tmp_path / "b"
