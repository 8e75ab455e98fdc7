"""btseg-predict never destroys a file it did not write, reads data sets as data sets, and
keeps going past bad inputs (issue 9).  Every test hashes the trees it must not change."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from btseg.cli.predict import main
from btseg.data import phantom

ROOT = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, str]:
    """rel path -> sha256 of every regular file under root."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def run(*args, pkg: Path):
    return CliRunner().invoke(main, [*map(str, args), "--model", str(pkg), "--backend", "torch", "--threads", "1"],
                              catch_exceptions=False)


def one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    errs = [ln for ln in res.output.splitlines() if ln.startswith("error: ")]
    assert len(errs) == 1 and "Traceback" not in res.output, res.output
    return errs[0]


@pytest.fixture()
def class_folder(tmp_path, images) -> Path:
    """A BUSI class folder: 'benign (k).png' with its ground-truth 'benign (k)_mask.png'."""
    d = tmp_path / "benign"
    d.mkdir()
    for k, im in enumerate(images[:3], 1):
        cv2.imwrite(str(d / f"benign ({k}).png"), im if im.ndim == 2 else im[..., ::-1])
        cv2.imwrite(str(d / f"benign ({k})_mask.png"), np.zeros(im.shape[:2], np.uint8))
    return d


def test_class_folder_out_into_itself_refused_before_any_work(class_folder, tiny_package):
    before = tree(class_folder)
    err = one_line_error(run(class_folder, "--out", class_folder, pkg=tiny_package))
    assert "_mask.png" in err and "never writes over inputs" in err
    assert tree(class_folder) == before  # not one byte changed, nothing added


def test_class_folder_segments_images_never_masks(class_folder, tiny_package, tmp_path):
    before = tree(class_folder)
    res = run(class_folder, "--out", tmp_path / "out", pkg=tiny_package)
    assert res.exit_code == 0, res.output
    assert "3 of 3 inputs segmented" in res.output and "ground-truth mask" in res.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == [
        f"benign ({k})_mask.png" for k in (1, 2, 3)]
    assert tree(class_folder) == before


def test_plain_folder_into_itself_then_rerun(tmp_path, images, tiny_package):
    d = tmp_path / "scans"
    (d / "sub").mkdir(parents=True)
    for i, im in enumerate(images[:2]):
        cv2.imwrite(str(d / f"s{i}.png"), im if im.ndim == 2 else im[..., ::-1])
    cv2.imwrite(str(d / "sub" / "deep.jpg"), images[0])
    inputs = tree(d)
    assert run(d, "--out", d, pkg=tiny_package).exit_code == 0
    after = tree(d)
    assert all(after[k] == v for k, v in inputs.items())  # inputs untouched
    assert {"s0_mask.png", "s1.json", "sub/deep_mask.png", "sub/deep_overlay.png"} <= set(after)
    # second run: the outputs are not inputs, and existing files are not replaced
    err = one_line_error(run(d, "--out", d, pkg=tiny_package))
    assert "exists; btseg-predict never overwrites" in err
    assert tree(d) == after
    res = run(d, "--out", d, "--overwrite", pkg=tiny_package)
    assert res.exit_code == 0 and "3 of 3 inputs segmented" in res.output, res.output
    assert all(tree(d)[k] == v for k, v in inputs.items())
    # --overwrite replaces only unchanged outputs its records prove it wrote
    (d / "s0_overlay.png").write_bytes((d / "s1_overlay.png").read_bytes())
    err = one_line_error(run(d, "--out", d, "--overwrite", pkg=tiny_package))
    assert "s0_overlay.png" in err and "not overwritten even with --overwrite" in err


@pytest.mark.parametrize("layout", ["busi", "datasetb", "folder"])
def test_data_set_root_gives_its_images_only(layout, tmp_path, tiny_package):
    root = tmp_path / layout
    {"busi": lambda: phantom.synthesize(root, n=6, size=48, seed=0, workers=1),
     "datasetb": lambda: phantom.write_datasetb(root, n=4, seed=1, size=48),
     "folder": lambda: phantom.write_folder(root, n=4, seed=2, size=48)}[layout]()
    from btseg.data.layouts import dataset_files

    _, images, masks = dataset_files(root)
    before = tree(root)
    out = tmp_path / "out"
    res = run(root, "--out", out, "--no-overlay", pkg=tiny_package)
    assert res.exit_code == 0, res.output
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*_mask.png"))
    assert written == sorted(str((p.parent.relative_to(root) / f"{p.stem}_mask.png")) for p in images)
    assert len(written) == len(images) and not any("_mask_mask" in w for w in written)
    assert tree(root) == before
    err = one_line_error(run(root, "--out", root / "preds", pkg=tiny_package))
    assert "inside the input data set" in err and tree(root) == before


def test_folder_without_images_is_exit_2(tmp_path, tiny_package):
    (tmp_path / "empty").mkdir()
    assert "no image, DICOM or video file found" in one_line_error(run(tmp_path / "empty", pkg=tiny_package))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    one_line_error(run(tmp_path / "notes", pkg=tiny_package))


def test_out_inside_a_package_or_the_assets_is_refused(tmp_path, images, copy_package, tiny_package):
    pkg = shutil.copytree(tiny_package, tmp_path / "pkg")
    d = tmp_path / "in"
    d.mkdir()
    for name in ("manifest", "model"):  # their JSON records would be manifest.json / model.json
        cv2.imwrite(str(d / f"{name}.png"), images[0])
    before = tree(pkg)
    for out in (pkg, pkg / "preds"):
        assert "model package" in one_line_error(run(d, "--out", out, pkg=pkg))
    other = shutil.copytree(tiny_package, tmp_path / "other")  # a package that is not --model
    assert "model package" in one_line_error(run(d, "--out", other, pkg=pkg))
    from btseg import defaults

    assert "bundled assets" in one_line_error(run(d, "--out", defaults.ASSETS / "x", pkg=pkg))
    assert tree(pkg) == before


def test_two_inputs_one_output_name_refused(tmp_path, images, tiny_package):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), images[0])
    cv2.imwrite(str(d / "a.jpg"), images[0])
    err = one_line_error(run(d, "--out", tmp_path / "out", pkg=tiny_package))
    assert "a.png" in err and "a.jpg" in err and "would both write" in err
    assert not (tmp_path / "out").exists()


def test_input_given_twice_is_segmented_once(tmp_path, images, tiny_package):
    p = tmp_path / "a.png"
    cv2.imwrite(str(p), images[0])
    res = run(p, tmp_path / "." / "a.png", "--out", tmp_path / "out", pkg=tiny_package)
    assert res.exit_code == 0 and "1 of 1 inputs" in res.output, res.output


def test_bad_inputs_are_per_input_errors_and_later_images_still_run(tmp_path, images, tiny_package):
    """Special files, a lying header and a truncated JPEG among good images, in a subprocess
    with a timeout: a FIFO or /dev/zero that blocked would fail the test, not hang it."""
    d = tmp_path / "in"
    d.mkdir()
    os.mkfifo(d / "a_fifo.png")
    (d / "b_zero.png").symlink_to("/dev/zero")
    (d / "c_dir.png").mkdir()
    (d / "d_loop.png").symlink_to(d / "d_loop2.png")
    (d / "d_loop2.png").symlink_to(d / "d_loop.png")
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)  # a header declaring 3.6 GP
    (d / "e_huge.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d" + ihdr + struct.pack(">I", zlib.crc32(ihdr))
                                   + b"\x00\x00\x00\x00IEND\xaeB`\x82")
    jpg = cv2.imencode(".jpg", cv2.GaussianBlur(images[0], (5, 5), 0))[1].tobytes()
    (d / "f_cut.jpg").write_bytes(jpg[: len(jpg) // 2] + b"\xff\xd9")
    (d / "g_float.tiff").write_bytes(cv2.imencode(".tiff", images[0].astype(np.float32))[1].tobytes())
    goods = []
    for i in range(2):
        goods.append(d / f"z_good{i}.png")
        cv2.imwrite(str(goods[-1]), images[i] if images[i].ndim == 2 else images[i][..., ::-1])
    args = [str(p) for p in sorted(d.iterdir())] + [str(d / "c_dir.png")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "btseg.cli.predict", *args, "--model", str(tiny_package),
                           "--backend", "torch", "--threads", "1", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, env=env)
    log = " ".join(proc.stderr.split())
    assert proc.returncode == 1, log
    assert "Traceback" not in log
    for name, why in (("a_fifo.png", "FIFO"), ("b_zero.png", "character device"), ("c_dir.png", "directory"),
                      ("d_loop.png", "symbolic links"), ("e_huge.png", "60000x60000"),
                      ("f_cut.jpg", "truncated"), ("g_float.tiff", "float")):
        assert f"{name}: " in log and why in log, (name, log)
    for g in goods:
        assert (tmp_path / "out" / f"{g.stem}_mask.png").is_file()
    assert "2 of 10 inputs segmented, 8 failed" in log


def test_segmenter_api_refuses_float_0_255_and_nan(tiny_package, images):
    from btseg.errors import DataError
    from btseg.runtime.inputs import to_unit_range
    from btseg.runtime.segmenter import Segmenter

    seg = Segmenter.load(tiny_package, backend="torch", threads=1)
    gray = images[0].astype(np.float32)
    with pytest.raises(DataError, match="float images must be in 0..1"):
        seg.segment(gray)  # 0..255 taken as 0..1 would give a confident wrong mask
    nan = gray / 255
    nan[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        seg.segment(nan)
    a = seg.segment(images[0]).mask
    b = seg.segment(to_unit_range(gray, (0, 255))).mask
    assert (a == b).mean() > 0.99  # the same image, given as float 0..1, gives the same mask
