"""The integrity chain on a real package (the bundled one: ONNX fp32/fp16/int8 + OpenVINO IRs).

Fault injection: every file of every artifact is tampered with (one byte flipped, same
size) and the real runtime (ONNX Runtime / OpenVINO, no mocks) must refuse it, as must
``btseg-check``; artifact paths that leave the package or are not regular files are
refused before a byte is read; artifacts of other weights are refused; NaN logits are an
error in every backend path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from btseg import defaults
from btseg.errors import IntegrityError, OutputError, SchemaError
from btseg.package import load_package
from btseg.package_check import check_package
from btseg.runtime import Segmenter
from btseg.runtime.postprocess import postprocess

pytestmark = pytest.mark.skipif(not (defaults.DEFAULT_PACKAGE / "manifest.json").exists(),
                                reason="bundled package missing (make weights)")
BACKEND = {"onnx": "onnxruntime", "openvino": "openvino"}


@pytest.fixture
def pkg(tmp_path):
    dst = tmp_path / "pkg"
    shutil.copytree(defaults.DEFAULT_PACKAGE, dst)
    return dst


def _records():
    return [(a["target"], a["precision"], f["file"])
            for a in json.loads((defaults.DEFAULT_PACKAGE / "manifest.json").read_text())["artifacts"]
            for f in a["files"]]


def _flip(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _edit(root, fn, name="manifest.json"):
    doc = json.loads((root / name).read_text())
    fn(doc)
    (root / name).write_text(json.dumps(doc))


def _check_cli(root):
    return subprocess.run([sys.executable, "-m", "btseg.cli.check", str(root)], capture_output=True, text=True,
                          timeout=120)


def test_bundled_package_checks_clean():
    report = check_package(defaults.DEFAULT_PACKAGE)
    assert report.ok, report.errors
    assert {r.artifact for r in report.rows} >= {"model.safetensors", "onnx/fp32", "onnx/int8", "openvino/fp32"}
    assert all(r.hash_ok and r.bound for r in report.rows)
    ir = next(r for r in report.rows if r.artifact == "openvino/fp32")
    assert ir.files == 2  # model.xml AND model.bin


def test_check_cli_on_the_bundled_model():
    r = subprocess.run([sys.executable, "-m", "btseg.cli.check"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "openvino/int8" in r.stdout and "error" not in r.stderr


@pytest.mark.parametrize("target,precision,file", _records(), ids=[f"{t}-{p}-{f}" for t, p, f in _records()])
def test_each_tampered_file_is_refused(pkg, target, precision, file):
    _flip(pkg / file)
    with pytest.raises(IntegrityError, match=f"{file}: sha256 .* does not match"):
        Segmenter.load(pkg, target=target, precision=precision, backend=BACKEND[target], threads=1)
    report = check_package(pkg)
    refused = [r for r in report.rows if r.status == "refused"]
    assert not report.ok and [r.artifact for r in refused] == [f"{target}/{precision}"]
    assert refused[0].hash_ok is False and refused[0].bound is True


def test_check_cli_refuses_a_tampered_ir_bin_with_exit_2(pkg):
    _flip(pkg / "openvino-fp16" / "model.bin")
    r = _check_cli(pkg)
    assert r.returncode == 2 and "openvino-fp16/model.bin: sha256" in r.stderr and "MISMATCH" in r.stdout


def test_tampered_ir_bin_is_refused_in_auto_too_no_fallback(pkg):
    # auto picks openvino/int8 first on a CPU: its .bin changed -> refusal, not another artifact
    _flip(pkg / "openvino-int8" / "model.bin")
    with pytest.raises(IntegrityError, match="model.bin"):
        Segmenter.load(pkg, threads=1)


def test_tampered_weights_refused_on_torch_and_by_check(pkg):
    _flip(pkg / "model.safetensors", offset=-8)
    with pytest.raises(IntegrityError, match="weights_sha256"):
        Segmenter.load(pkg, backend="torch", threads=1)
    assert _check_cli(pkg).returncode == 2


def test_artifact_of_other_weights_refused(pkg):
    _edit(pkg, lambda d: d.update(weights_sha256="0" * 64), "model.json")
    for target, precision in (("onnx", "fp32"), ("openvino", "fp32")):
        with pytest.raises(IntegrityError, match="exported from other weights"):
            Segmenter.load(pkg, target=target, precision=precision, threads=1)
    report = check_package(pkg)
    assert not report.ok and all(r.bound is False for r in report.rows if "/" in r.artifact)


def test_same_size_replacement_of_a_truncated_file_refused(pkg):
    p = pkg / "student-fp32.onnx"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(IntegrityError, match="1000 bytes, the package records"):
        Segmenter.load(pkg, target="onnx", precision="fp32", threads=1)


@pytest.mark.parametrize("path", ["../x.onnx", "/etc/passwd", "/dev/zero", "/", "a/../../x"])
def test_paths_leaving_the_package_refused_by_the_schema(pkg, path):
    def point(d):
        a = d["artifacts"][0]
        a["file"] = a["files"][0]["file"] = path
    _edit(pkg, point)
    with pytest.raises(SchemaError, match="expected a relative path inside the package"):
        Segmenter.load(pkg, target="onnx", precision="fp32", threads=1)


def _retarget(pkg, rel):
    def point(d):
        a = d["artifacts"][0]
        a["file"] = a["files"][0]["file"] = rel
    _edit(pkg, point)


def test_symlink_leaving_the_package_refused(pkg, tmp_path):
    outside = tmp_path / "outside.onnx"
    shutil.copy(pkg / "student-fp32.onnx", outside)
    (pkg / "student-fp32.onnx").unlink()
    os.symlink(outside, pkg / "student-fp32.onnx")  # same bytes, same hash: still refused
    with pytest.raises(IntegrityError, match="symlink"):
        Segmenter.load(pkg, target="onnx", precision="fp32", threads=1)


def test_symlinked_directory_refused(pkg, tmp_path):
    shutil.move(pkg / "openvino-fp32", tmp_path / "ir")
    os.symlink(tmp_path / "ir", pkg / "openvino-fp32")
    with pytest.raises(IntegrityError, match="symlink"):
        Segmenter.load(pkg, target="openvino", precision="fp32", threads=1)


@pytest.mark.parametrize("kind", ["device", "fifo", "directory"])
def test_special_files_refused_without_reading(pkg, kind):
    rel = "student-fp32.onnx"
    (pkg / rel).unlink()
    if kind == "device":
        os.symlink("/dev/zero", pkg / rel)  # a symlink: refused by O_NOFOLLOW before the device is opened
    elif kind == "fifo":
        os.mkfifo(pkg / rel)
    else:
        (pkg / rel).mkdir()
    done = []
    t = threading.Thread(target=lambda: done.append(check_package(pkg)), daemon=True)
    t.start()
    t.join(30)
    assert done, "checking a special file hung"
    row = next(r for r in done[0].rows if r.artifact == "onnx/fp32")
    assert row.status == "refused" and ("FIFO" in row.reason or "symlink" in row.reason or "directory" in row.reason)


def test_manifest_that_is_a_fifo_or_a_list_gives_one_line(pkg):
    (pkg / "manifest.json").write_text("[]")
    r = _check_cli(pkg)
    assert r.returncode == 2 and "manifest.json: (document) = 'list': expected a JSON object" in r.stderr
    (pkg / "manifest.json").unlink()
    os.mkfifo(pkg / "manifest.json")
    r = _check_cli(pkg)
    assert r.returncode == 2 and "manifest.json: file is a device, FIFO or socket" in r.stderr


def test_nan_logits_are_an_error_never_a_mask():
    for bad in (np.nan, np.inf, -np.inf):
        logits = np.zeros((64, 64), np.float32)
        logits[3, 4] = bad
        with pytest.raises(OutputError, match="1 of 4096 values are NaN or inf"):
            postprocess(logits, (64, 64))


def test_nan_weights_give_an_error_on_torch(tmp_path):
    """Weights that really hold NaN (hash recorded, so not tampering): refused, not an empty mask."""
    import torch

    from btseg.package import save_package

    src = load_package(defaults.DEFAULT_PACKAGE)
    model = src.build_model()
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "weight" in n).fill_(float("nan"))
    save_package(tmp_path / "nan", model, src.config)
    with pytest.raises(OutputError):
        Segmenter.load(tmp_path / "nan", backend="torch", threads=1).segment(np.full((96, 80), 128, np.uint8))


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_nan_in_an_onnx_artifact_gives_an_error_on_each_backend(pkg, backend):
    """An ONNX artifact whose initializer holds NaN, recorded in the manifest as if exported
    that way: both runtimes produce NaN logits, and segment / segment_batch refuse them."""
    import onnx
    from onnx import numpy_helper

    from btseg.integrity import record_files

    m = onnx.load(str(pkg / "student-fp32.onnx"))
    last_conv = [n for n in m.graph.node if n.op_type == "Conv"][-1]  # the logits head: no ReLU after it
    init = next(i for i in m.graph.initializer if i.name == last_conv.input[1])
    init.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(init), np.nan), init.name))
    onnx.save(m, str(pkg / "student-fp32.onnx"))

    def rerecord(d):
        a = next(a for a in d["artifacts"] if a["id"] == "onnx-fp32")
        a["files"] = record_files(pkg, ["student-fp32.onnx"])
        a["sha256"], a["size_bytes"] = a["files"][0]["sha256"], a["files"][0]["size_bytes"]
    _edit(pkg, rerecord)
    seg = Segmenter.load(pkg, target="onnx", precision="fp32", backend=backend, threads=1)
    image = np.full((96, 80), 128, np.uint8)
    with pytest.raises(OutputError, match="NaN or inf"):
        seg.segment(image)
    with pytest.raises(OutputError, match="NaN or inf"):
        seg.segment_batch([image, image])


def _to_format_1(pkg):
    """The bundled package as it was before the integrity chain (how it was migrated)."""
    def model(d):
        d["format_version"] = 1
        del d["weights_sha256"], d["weights_size"]

    def manifest(d):
        d["format_version"] = 1
        for a in d["artifacts"]:
            files = a.pop("files")
            del a["weights_sha256"]
            if len(files) > 1:
                a["extra"]["files"] = files
    _edit(pkg, model, "model.json")
    _edit(pkg, manifest)


def test_format_1_is_refused_then_migrated(pkg):
    _to_format_1(pkg)
    with pytest.raises(SchemaError, match="format_version 1 predates the integrity chain.*--migrate"):
        Segmenter.load(pkg, threads=1)
    r = subprocess.run([sys.executable, "-m", "btseg.cli.check", "--migrate", str(pkg)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert check_package(pkg).ok
    assert json.loads((pkg / "manifest.json").read_text()) == json.loads(
        (defaults.DEFAULT_PACKAGE / "manifest.json").read_text())


def test_migration_refuses_a_file_that_changed_since_its_record(pkg):
    from btseg.package_check import migrate

    _to_format_1(pkg)
    _flip(pkg / "openvino-int8" / "model.bin")
    before = (pkg / "manifest.json").read_bytes()
    with pytest.raises(IntegrityError, match="model.bin: sha256"):
        migrate(pkg)
    assert (pkg / "manifest.json").read_bytes() == before
