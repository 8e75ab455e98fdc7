"""btseg-export end to end: manifest, re-runs, bad inputs (exit 2, nothing left), gates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from btseg.io import sha256_file
from btseg.package import load_package


def files_under(root: Path) -> set[str]:
    """Every file (hidden ones included) below ``root``, relative."""
    return {str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file()}


def _manifest(root):
    return {a["id"]: a for a in json.loads((root / "manifest.json").read_text())["artifacts"]}


def test_manifest_records_every_field(exported):
    rec = _manifest(exported)["onnx-fp32"]
    assert rec["file"] == "student-fp32.onnx" and rec["sha256"] == sha256_file(exported / rec["file"])
    assert rec["size_bytes"] == (exported / rec["file"]).stat().st_size and rec["status"] == "ok"
    assert {"torch", "onnx", "onnxruntime", "onnxslim", "btseg"} <= set(rec["toolchain"])
    assert rec["opset"] >= 17 and rec["export_seconds"] > 0
    assert rec["inputs"] == [{"name": "image", "shape": [1, 1, 64, 64], "dtype": "float32"}]
    assert rec["preprocess"]["size"] == [64, 64]
    v = rec["verification"]
    assert v["status"] == "passed" and v["dice_vs_torch"] >= 0.999 and v["max_abs_diff"] < 1e-3
    assert v["dice_gt"] is not None and v["backend"]["artifact"] == "student-fp32.onnx"
    int8 = _manifest(exported)["onnx-int8"]
    assert int8["extra"]["calib_images"] == 8 and int8["extra"]["calib_method"] == "minmax"
    assert not [p for p in exported.iterdir() if p.name.startswith(".")], "staging left behind"


def test_rerun_replaces_one_artifact_and_keeps_the_others(exported, tmp_path, phantom, cli):
    pkg = tmp_path / "pkg"
    shutil.copytree(exported, pkg)
    before = _manifest(pkg)
    r = cli(pkg, "-t", "onnx", "-p", "fp32", "--verify-data", phantom, "--verify-n", "2", "--input-size", 32, 32)
    assert r.exit_code == 0, r.output
    after = _manifest(pkg)
    assert set(after) == set(before)
    assert after["onnx-fp32"]["inputs"][0]["shape"] == [1, 1, 32, 32]
    # the runtime preprocesses for the artifact it runs, not for model.json's size
    from btseg.runtime import Segmenter

    seg = Segmenter.load(pkg, target="onnx", precision="fp32")
    assert seg.spec.size == (32, 32)
    assert seg.segment(np.zeros((50, 70), np.uint8)).mask.shape == (50, 70)
    assert after["onnx-fp32"]["sha256"] == sha256_file(pkg / "student-fp32.onnx") != before["onnx-fp32"]["sha256"]
    for k in before:
        if k != "onnx-fp32":
            assert after[k] == before[k]
            load_package(pkg).artifact_path(load_package(pkg).artifact(after[k]["target"], after[k]["precision"]))


def test_target_all_skips_tensorrt_and_exits_0(pkg_copy, phantom, cli):
    r = cli(pkg_copy, "--target", "all", "--precision", "fp32", "--verify-data", phantom, "--verify-n", "2")
    assert r.exit_code == 0, r.output
    assert "skipped: tensorrt not installed" in r.output or "skipped: no CUDA device" in r.output
    assert set(_manifest(pkg_copy)) == {"onnx-fp32", "openvino-fp32"}


def test_verification_failure_marks_failed_and_gates(pkg_copy, phantom, cli):
    args = [pkg_copy, "-t", "onnx", "-p", "int8", "--calib-data", phantom, "--calib-size", 4, "--verify-n", 4,
            "--tolerance", "max_abs_diff=0"]
    r = cli(*args)
    assert r.exit_code == 2 and "verification failed" in r.output and "largest probability difference" in r.output
    rec = _manifest(pkg_copy)["onnx-int8"]
    assert rec["status"] == "failed" and rec["verification"]["failures"]
    r = cli(*args, "--no-verify-gate")
    assert r.exit_code == 0, r.output
    assert _manifest(pkg_copy)["onnx-int8"]["status"] == "failed"


def test_out_dir_gets_a_new_package_and_few_calib_images_are_recorded(package, phantom, tmp_path, cli):
    out = tmp_path / "dist" / "cart"
    r = cli(package, "-t", "onnx", "-p", "int8", "--calib-data", phantom, "--calib-size", 100, "--out", out,
            "--verify-n", 2)
    assert r.exit_code == 0, r.output
    assert "asked for 100 images, only 16 available" in r.output
    assert {"model.json", "model.safetensors", "manifest.json", "student-int8.onnx"} == files_under(out)
    assert not (package / "manifest.json").exists()
    cal = _manifest(out)["onnx-int8"]["extra"]["calibration"]
    assert cal["used"] == 16 and cal["requested"] == 100


def _bad_weights(pkg, how):
    w = pkg / "model.safetensors"
    if how == "missing":
        w.unlink()
    elif how == "truncated":
        w.write_bytes(w.read_bytes()[:200])
    else:
        w.write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)


@pytest.mark.parametrize("case", ["missing-dir", "weights-missing", "weights-truncated", "weights-not-safetensors",
                                  "unknown-model", "empty-calib", "unreadable-calib", "out-not-writable",
                                  "unknown-target", "unknown-precision", "unsupported-combination", "no-verify-data"])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, pkg_copy, phantom, tmp_path, cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["-t", "onnx", "-p", "int8", "--calib-data", phantom, "--verify-n", 2]
    pkg = pkg_copy
    if case == "missing-dir":
        pkg = tmp_path / "nope"
    elif case.startswith("weights-"):
        _bad_weights(pkg, case.split("-", 1)[1])
    elif case == "unknown-model":
        cfg = json.loads((pkg / "model.json").read_text())
        (pkg / "model.json").write_text(json.dumps({**cfg, "architecture": "resnet9000"}))
    elif case == "empty-calib":
        args = ["-t", "onnx", "-p", "int8", "--calib-data", empty]
    elif case == "unreadable-calib":
        (empty / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        args = ["-t", "onnx", "-p", "int8", "--calib-data", empty]
    elif case == "out-not-writable":
        (tmp_path / "afile").write_text("x")
        args += ["--out", tmp_path / "afile" / "pkg"]
    elif case == "unknown-target":
        args = ["-t", "coreml", "-p", "fp32"]
    elif case == "unknown-precision":
        args = ["-t", "onnx", "-p", "int4"]
    elif case == "unsupported-combination":
        args = ["-t", "openvino", "-p", "int8", "--calib-data", phantom, "--calib-method", "entropy"]
    elif case == "no-verify-data":
        args = ["-t", "onnx", "-p", "fp32"]
    before = files_under(pkg) if pkg.exists() else set()
    r = cli(pkg, *args)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert (files_under(pkg) if pkg.exists() else set()) == before
    if case == "unsupported-combination":
        assert "openvino can do" in lines[0] and "minmax, percentile" in lines[0]


def test_calib_data_with_bad_items_refused_naming_all_or_skipped_with_skip_bad(package, tmp_path, cli):
    from btseg.data.phantom import synthesize

    s = synthesize(tmp_path / "messy", n=16, size=64, seed=1, workers=1, defects="bad")
    bad = [f.split("/")[-1] for d in s["defects"] for f in d["files"]]
    out = tmp_path / "cart"
    args = [package, "-t", "onnx", "-p", "int8", "--calib-data", tmp_path / "messy", "--calib-size", 4,
            "--verify-n", 2, "--out", out, "--no-verify-gate"]  # the 2-second student: rough INT8
    r = cli(*args)
    assert r.exit_code == 2 and all(f in r.output for f in bad) and not (out / "manifest.json").exists()
    r = cli(*args, "--skip-bad")
    assert r.exit_code == 0, r.output
    assert all(r.output.count(f + ":") == 1 for f in bad)  # named once, for calibration and verification
    cal = _manifest(out)["onnx-int8"]["extra"]["calibration"]
    assert {d["file"].split("/")[-1] for d in cal["skipped"]} == set(bad)


def test_plain_image_folder_names_every_bad_file(tmp_path):
    from btseg.errors import DataError
    from btseg.export.quantize import load_images
    from btseg.io import write_png

    for i in range(4):
        write_png(tmp_path / f"im{i}.png", np.full((32, 32), 40 * i, np.uint8))
    for name in ("im1.png", "im3.png"):
        (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:40])
    with pytest.raises(DataError) as e:
        load_images(tmp_path, 4)
    assert "2 bad item(s)" in str(e.value) and "im1.png" in str(e.value) and "im3.png" in str(e.value)
    with pytest.warns(Warning):
        got = load_images(tmp_path, 4, skip_bad=True)
    assert len(got) == 2 and {p.split("/")[-1] for p, _ in got.skipped} == {"im1.png", "im3.png"}
