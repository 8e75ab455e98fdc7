"""btseg-predict --dicom: a SEG and a TID 1500 SR per DICOM frame, checked with the real tools:
dciodvfy (dicom3tools) finds no error, highdicom reads the SEG back to the PNG mask's pixels, and
the SR's area is the JSON record's."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg.cli import predict
from btseg.dicom.seg import CATEGORY, PROPERTY_TYPE, ModelIdentity, build_seg, read_source, seg_mask, write_dataset
from btseg.dicom.sr import build_sr, sr_values
from btseg.errors import DataError
from dicom_fixtures import need, us_file
from dicom_util import write_dicom

pytest.importorskip("highdicom")
MODEL = ModelIdentity("0.1.0", "ab" * 32, "onnxruntime/int8", "onnxruntime")


def run(args: list[str]):
    return CliRunner().invoke(predict.main, args)


def dciodvfy_errors(path: Path) -> list[str]:
    out = subprocess.run([need("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith(("Error", "Abort"))]


def ds_equal(sr_area: float, json_area: float) -> bool:
    """The SR stores a DS (16 characters): equal to the JSON float at that precision."""
    return sr_area == pytest.approx(json_area, rel=1e-12, abs=1e-12)


def test_predict_dicom_writes_seg_and_sr_that_match_the_png_and_json(dicom_inputs, tmp_path):
    out = tmp_path / "out"
    r = run([str(dicom_inputs["us"]), str(dicom_inputs["cine"]), "--dicom", "--out", str(out)])
    assert r.exit_code == 0, r.output
    stems = ["us", "cine_f0000", "cine_f0001"]
    weights = json.loads((out / "us.json").read_text())["dicom_out"]
    assert weights["seg"] == "us_seg.dcm"
    for stem in stems:
        rec = json.loads((out / f"{stem}.json").read_text())
        png = cv2.imread(str(out / f"{stem}_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
        seg_path, sr_path = out / f"{stem}_seg.dcm", out / f"{stem}_sr.dcm"
        assert rec["files"][seg_path.name] and rec["files"][sr_path.name]  # owned: --overwrite can replace them
        assert np.array_equal(seg_mask(seg_path), png)
        assert png.any(), "the sample must give a lesion (else the comparison proves little)"
        assert dciodvfy_errors(seg_path) == [] and dciodvfy_errors(sr_path) == []
        vals = sr_values(sr_path)
        assert vals["area_unit"] == "mm2" and ds_equal(vals["area_mm2"], rec["area_mm2"])
        assert vals["presence"] == "Present" and vals["probability"] == pytest.approx(rec["confidence"])
        source = pydicom.dcmread(dicom_inputs["cine" if stem.startswith("cine") else "us"])
        seg, sr = pydicom.dcmread(seg_path), pydicom.dcmread(sr_path)
        assert vals["seg_uid"] == seg.SOPInstanceUID
        for obj in (seg, sr):  # in the source's study, with its patient
            assert (obj.StudyInstanceUID, obj.PatientID, obj.AccessionNumber) == \
                (source.StudyInstanceUID, source.PatientID, source.AccessionNumber)
            assert obj.SeriesInstanceUID != source.SeriesInstanceUID
        ref = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == source.SOPClassUID
        assert ref.get("ReferencedFrameNumber") == (int(stem[-1]) + 1 if stem.startswith("cine") else None)
        segment = seg.SegmentSequence[0]
        assert segment.SegmentLabel == "lesion" and segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == CATEGORY[0]
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == PROPERTY_TYPE[0]
        algo = segment.SegmentationAlgorithmIdentificationSequence[0]
        assert algo.AlgorithmName == "btseg"
        assert rec["backend"] and json.loads((out / f"{stem}.json").read_text())
    info = json.loads((Path(predict.__file__).parents[1] / "assets/default/model.json").read_text())
    assert info["weights_sha256"] in str(pydicom.dcmread(out / "us_seg.dcm").SegmentSequence[0]
                                        .SegmentationAlgorithmIdentificationSequence[0].AlgorithmParameters)


def test_regions_are_pasted_back_into_the_seg(dicom_inputs, tmp_path):
    """Outside the tissue region (text bar, screen border) the SEG is empty, as the PNG is."""
    out = tmp_path / "out"
    assert run([str(dicom_inputs["us"]), "--dicom", "--out", str(out), "--no-overlay"]).exit_code == 0
    mask = seg_mask(out / "us_seg.dcm")
    assert mask.shape == pydicom.dcmread(dicom_inputs["us"]).pixel_array.shape
    assert not mask[:30].any() and not mask[:, :20].any() and mask[30:, 20:].any()


def test_non_dicom_input_is_a_per_input_error_and_the_rest_is_processed(dicom_inputs, tmp_path):
    png = tmp_path / "scan.png"
    cv2.imwrite(str(png), np.full((64, 64), 90, np.uint8))
    out = tmp_path / "out"
    r = run([str(png), str(dicom_inputs["us"]), str(dicom_inputs["ct"]), "--dicom", "--out", str(out)])
    assert r.exit_code == 1
    assert "scan.png: --dicom writes a SEG and an SR into the source's DICOM study" in " ".join(r.output.split())
    assert "no patient, study or instance to attach them to" in " ".join(r.output.split())
    assert "modality 'CT'" in r.output
    assert (out / "us_seg.dcm").is_file() and not list(out.glob("scan*")) and not list(out.glob("ct*"))


def test_seg_and_sr_are_never_written_over_without_overwrite(dicom_inputs, tmp_path):
    out = tmp_path / "out"
    assert run([str(dicom_inputs["us"]), "--dicom", "--out", str(out)]).exit_code == 0
    assert run([str(dicom_inputs["us"]), "--dicom", "--out", str(out)]).exit_code == 2
    assert run([str(dicom_inputs["us"]), "--dicom", "--out", str(out), "--overwrite"]).exit_code == 0
    for p in out.iterdir():  # a SEG no record vouches for (someone else's file) is never replaced
        if p.name != "us_seg.dcm":
            p.unlink()
    before = (out / "us_seg.dcm").read_bytes()
    r = run([str(dicom_inputs["us"]), "--dicom", "--out", str(out), "--overwrite"])
    assert r.exit_code == 2 and "us_seg.dcm" in r.output and (out / "us_seg.dcm").read_bytes() == before


def test_a_source_without_a_study_is_refused_naming_what_lacks(tmp_path):
    path = us_file(tmp_path / "nostudy.dcm")
    ds = pydicom.dcmread(path)
    del ds.StudyInstanceUID
    ds.save_as(path)
    with pytest.raises(DataError, match="lacks StudyInstanceUID"):
        read_source(path)
    r = run([str(path), "--dicom", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "lacks StudyInstanceUID" in r.output
    assert not list((tmp_path / "o").glob("*.json"))  # no record says this frame is done


def test_a_failed_sr_write_leaves_no_record_and_no_half_file(dicom_inputs, tmp_path, monkeypatch):
    """Fault injection: the disk fills while the SR is written."""
    import btseg.dicom.writer as writer

    real = writer.write_dataset

    def failing(ds, path):
        if path.name.endswith("_sr.dcm"):
            raise OSError(28, "No space left on device")
        real(ds, path)

    monkeypatch.setattr(writer, "write_dataset", failing)
    out = tmp_path / "out"
    r = run([str(dicom_inputs["us"]), "--dicom", "--out", str(out)])
    assert r.exit_code == 1 and "No space left on device" in r.output
    assert not (out / "us.json").exists() and not (out / "us_sr.dcm").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.integers(16, 70), cols=st.integers(16, 70), frames=st.integers(1, 3), seed=st.integers(0, 2**16),
       spacing=st.one_of(st.none(), st.floats(0.01, 2.0)))
def test_any_mask_round_trips_through_seg_and_sr(tmp_path, rows, cols, frames, seed, spacing):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (frames, rows, cols) if frames > 1 else (rows, cols), dtype=np.uint8)
    src_path = write_dicom(tmp_path / f"s{seed}_{frames}.dcm", pixels,
                           pixel_spacing=(spacing, spacing) if spacing else None)
    source = read_source(src_path)
    for f in range(frames):
        mask = rng.random((rows, cols)) < rng.choice([0.0, 0.05, 0.5, 1.0])
        seg = build_seg(source, mask, MODEL, f if frames > 1 else None)
        write_dataset(seg, tmp_path / "m_seg.dcm")
        assert np.array_equal(seg_mask(tmp_path / "m_seg.dcm"), mask)
        area = float(mask.sum()) * spacing * spacing if spacing else None
        ys, xs = np.nonzero(mask)
        bbox = [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1] if mask.any() else None
        rec = {"area_px": int(mask.sum()), "area_mm2": area, "bbox": bbox, "confidence": float(rng.random())}
        write_dataset(build_sr(source, seg, rec, MODEL, f if frames > 1 else None), tmp_path / "m_sr.dcm")
        vals = sr_values(tmp_path / "m_sr.dcm")
        assert (vals["area_mm2"] is None) == (area is None)
        assert area is None or ds_equal(vals["area_mm2"], area)
        assert vals["presence"] == ("Present" if mask.any() else "Absent")
