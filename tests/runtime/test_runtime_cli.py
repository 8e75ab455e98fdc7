"""btseg-predict: outputs per input/frame, one bad file among many, --json, exit codes."""

from __future__ import annotations

import json

import cv2
import numpy as np
from click.testing import CliRunner

from btseg.cli.predict import main
from dicom_util import write_dicom


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_outputs_and_one_bad_file_among_many(tmp_path, exported_package, image_dir, images):
    cine = write_dicom(tmp_path / "cine.dcm", np.stack([images[0]] * 3), pixel_spacing=(0.1, 0.1))
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    pngs = sorted(image_dir.glob("*.png"))[:2]
    res = _run([*pngs, bad, cine, "--model", exported_package, "--out", out, "--threads", "1"])
    assert res.exit_code == 1, res.output
    assert f"skipped {bad}" in res.output.replace("\n", " ") and "not a readable image" in res.output
    assert "3 of 4 inputs segmented, 1 failed" in res.output
    for stem in [p.stem for p in pngs] + [f"cine_f{i:04d}" for i in range(3)]:
        mask = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert set(np.unique(mask)) <= {0, 255}
        assert (out / f"{stem}_overlay.png").is_file()
        rec = json.loads((out / f"{stem}.json").read_text())
        assert {"area_px", "bbox", "confidence", "timings", "backend"} <= set(rec)
        assert rec["backend"]["backend"] == "openvino"
    rec = json.loads((out / "cine_f0002.json").read_text())
    assert abs(rec["area_mm2"] - rec["area_px"] * 0.01) < 1e-6
    assert rec["frame"] == 2 and mask.shape == images[0].shape[:2]
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"


def test_json_lines_and_no_overlay(tmp_path, exported_package, image_dir):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [str(image_dir), "--model", str(exported_package), "--out", str(out),
                                    "--backend", "onnxruntime", "--no-overlay", "--json", "--spacing", "0.2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(lines) == 6 and all(r["backend"]["backend"] == "onnxruntime" for r in lines)
    assert all(r["area_mm2"] is not None for r in lines)
    assert not list(out.glob("*_overlay.png")) and len(list(out.glob("*_mask.png"))) == 6


def test_bad_model_is_one_line_and_exit_2(tmp_path, image_dir):
    res = CliRunner().invoke(main, [str(image_dir), "--model", str(tmp_path / "nope")])
    assert res.exit_code == 2 and res.output.startswith("error: ") and "Traceback" not in res.output
