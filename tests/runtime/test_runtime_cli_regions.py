"""btseg-predict --roi / --roi auto / --allow-modality / --any-modality, and the DICOM and
region records in its JSON, on pydicom's scanner files and synthetic screen captures."""

from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from btseg.cli.predict import main
from screen_util import make_capture


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _mask(out, stem):
    return cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED) > 0


def test_roi_confines_every_mask(tmp_path, tiny_package, image_dir):
    out = tmp_path / "out"
    res = _run([image_dir, "--model", tiny_package, "--out", out, "--roi", "10,20,50,40", "--no-overlay"])
    assert res.exit_code == 0, res.output
    for p in image_dir.glob("*.png"):
        m = _mask(out, p.stem)
        rec = json.loads((out / f"{p.stem}.json").read_text())
        assert m[20:60, 10:60].sum() == m.sum() == rec["area_px"] and rec["regions"][0]["box"] == [10, 20, 50, 40]


def test_roi_outside_is_a_per_input_error_and_bad_syntax_is_usage(tmp_path, tiny_package, image_dir):
    res = _run([image_dir, "--model", tiny_package, "--out", tmp_path / "o", "--roi", "0,0,100,97"])
    assert res.exit_code == 1 and "0 of 6 inputs segmented" in res.output
    assert "roi (0, 0, 100, 97) is outside the" in res.output.replace("\n", " ")
    res = _run([image_dir, "--model", tiny_package, "--out", tmp_path / "o", "--roi", "1,2,three,4"])
    assert res.exit_code == 2 and res.output.startswith("error: roi '1,2,three,4'") and "Traceback" not in res.output


def test_ct_refused_in_a_batch_unless_allowed(tmp_path, tiny_package, image_dir):
    ct, png = get_testdata_file("CT_small.dcm"), sorted(image_dir.glob("*.png"))[0]
    res = _run([ct, png, "--model", tiny_package, "--out", tmp_path / "a", "--no-overlay"])
    assert res.exit_code == 1 and "1 of 2 inputs segmented" in res.output
    assert "modality 'CT' (computed tomography)" in res.output.replace("\n", " ")
    for flag in (["--allow-modality", "CT"], ["--any-modality"]):
        out = tmp_path / flag[0]
        res = _run([ct, png, "--model", tiny_package, "--out", out, "--no-overlay", *flag])
        assert res.exit_code == 0, res.output
        rec = json.loads((out / "CT_small.json").read_text())
        assert rec["dicom"]["modality"] == "CT" and rec["dicom"]["photometric_interpretation"] == "MONOCHROME2"
        assert json.loads((out / f"{png.stem}.json").read_text())["dicom"] is None


def test_philips_capture_json_lists_regions_and_vendor(tmp_path, tiny_package):
    out = tmp_path / "out"
    res = _run([get_testdata_file("examples_palette.dcm"), "--model", tiny_package, "--out", out])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "examples_palette.json").read_text())
    assert rec["dicom"]["manufacturer"].startswith("Philips") and rec["dicom"]["modality"] == "US"
    assert rec["dicom"]["photometric_interpretation"] == "PALETTE COLOR"
    assert [r["box"] for r in rec["regions"]] == [[120, 60, 680, 290]] and rec["regions_skipped"][0]["index"] == 1
    m = _mask(out, "examples_palette")
    assert m[60:350, 120:800].sum() == m.sum() == rec["area_px"]
    assert (out / "examples_palette_overlay.png").is_file()


def test_roi_auto_on_a_screen_capture_png(tmp_path, tiny_package):
    screen, truth, d = make_capture(3)
    cv2.imwrite(str(tmp_path / "screen.png"), screen[..., ::-1])
    out = tmp_path / "out"
    res = _run([tmp_path / "screen.png", "--model", tiny_package, "--out", out, "--roi", "auto", "--spacing", "0.1"])
    assert res.exit_code == 0, res.output
    rec = json.loads((out / "screen.json").read_text())
    x, y, w, h = rec["regions"][0]["box"]
    m = _mask(out, "screen")
    assert rec["regions"][0]["source"] == "auto" and m[y:y + h, x:x + w].sum() == m.sum() > 0
    assert abs(rec["area_mm2"] - rec["area_px"] * 0.01) < 1e-6
    assert np.count_nonzero(m & ~truth) <= 0.1 * np.count_nonzero(m)
