"""Regions, roi and modality: real scanner DICOM (pydicom's test files), synthetic screen
captures written as DICOM with SequenceOfUltrasoundRegions, roi crop/paste, --roi auto.

pydicom ships (installed, no download) examples_palette.dcm (Philips screen capture,
PALETTE COLOR, a 2-D tissue region and a waveform region), examples_ybr_color.dcm (SonoSite
30-frame YBR_FULL_422 cine with a tissue region), examples_rgb_color.dcm (GE, US, no
regions), CT_small.dcm and MR_small.dcm; its larger files (US1_UNCR.dcm, emri_small.dcm...)
need the pydicom-data download and are not used.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from btseg.errors import ConfigError, DataError, ModalityError
from btseg.runtime import Segmenter, iter_frames
from btseg.runtime.regions import parse_roi
from btseg.runtime.roi_auto import detect_roi, mask_iou
from dicom_util import region_items, write_dicom
from screen_util import make_capture


def real(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is not installed"
    return path


@pytest.fixture(scope="module")
def seg(tiny_package) -> Segmenter:
    return Segmenter.load(tiny_package, backend="torch", threads=1)


def tissue(x0, y0, x1, y1, delta_cm=0.01, units=3, fmt=1, dtype=1) -> dict:
    return {"RegionSpatialFormat": fmt, "RegionDataType": dtype, "RegionLocationMinX0": x0,
            "RegionLocationMinY0": y0, "RegionLocationMaxX1": x1, "RegionLocationMaxY1": y1,
            "PhysicalUnitsXDirection": units, "PhysicalUnitsYDirection": units,
            "PhysicalDeltaX": delta_cm, "PhysicalDeltaY": delta_cm}


def outside(mask: np.ndarray, boxes) -> int:
    keep = np.zeros(mask.shape, bool)
    for x, y, w, h in boxes:
        keep[y:y + h, x:x + w] = True
    return int(np.count_nonzero(mask & ~keep))


# -- real scanner files ------------------------------------------------------------------
def test_philips_capture_segments_only_its_tissue_region(seg):
    (frame,) = iter_frames(real("examples_palette.dcm"))
    info = frame.dicom
    assert (info.modality, info.photometric) == ("US", "PALETTE COLOR") and "Philips" in info.manufacturer
    assert frame.image.shape == (350, 800, 3)  # the palette applied: RGB, not indices
    (region,) = info.regions
    assert region.box == (120, 60, 680, 290) and "clipped" in region.note  # header says rows 60..518 of 350
    assert region.spacing_mm == pytest.approx((0.2622878766, 0.2622878766))
    assert info.skipped[0]["index"] == 1 and "spatial format 4" in info.skipped[0]["reason"]
    out = seg.segment(frame)
    assert out.mask.shape == (350, 800) and outside(out.mask, [region.box]) == 0
    assert not out.mask[:60].any(), "the header bar with the patient and probe text is never lesion"
    assert out.area_mm2 == pytest.approx(out.area_px * 0.2622878766 ** 2)
    rec = out.to_record()
    assert rec["regions"][0]["box"] == [120, 60, 680, 290] and rec["regions_skipped"][0]["index"] == 1


def test_sonosite_ybr_cine_every_frame_in_its_region(seg):
    frames = list(iter_frames(real("examples_ybr_color.dcm")))
    assert len(frames) == 30 and all(f.dicom is frames[0].dicom for f in frames)
    assert frames[0].dicom.manufacturer.startswith("SonoSite") and frames[0].image.shape == (240, 320, 3)
    (region,) = frames[0].dicom.regions
    for out in seg.segment_batch(frames[:3]):
        assert outside(out.mask, [region.box]) == 0 and out.to_record()["regions"][0]["index"] == 0


def test_ge_ultrasound_without_regions_is_the_whole_image(seg):
    (frame,) = iter_frames(real("examples_rgb_color.dcm"))
    assert frame.dicom.modality == "US" and not frame.dicom.has_regions
    assert "regions" not in seg.segment(frame).to_record()


@pytest.mark.parametrize("name, modality", [("CT_small.dcm", "CT"), ("MR_small.dcm", "MR"),
                                            ("SC_rgb_small_odd.dcm", "OT")])
def test_other_modalities_refused_unless_allowed(name, modality):
    with pytest.raises(ModalityError, match=f"modality '{modality}'"):
        list(iter_frames(real(name)))
    (frame,) = iter_frames(real(name), allow_modalities=[modality.lower()])
    assert frame.dicom.modality == modality and frame.dicom.allowed_by == f"allowed {modality}"
    assert list(iter_frames(real(name), allow_modalities=["*"]))


def test_secondary_capture_with_ultrasound_regions_is_ultrasound(tmp_path):
    img = np.full((64, 64), 90, np.uint8)
    path = write_dicom(tmp_path / "sc.dcm", img, modality="OT", regions=[tissue(0, 0, 63, 63)])
    (frame,) = iter_frames(path)
    assert frame.dicom.allowed_by == "ultrasound"
    ot = write_dicom(tmp_path / "ot.dcm", img, modality="OT")
    ds = pydicom.dcmread(ot)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    ds.save_as(ot)
    with pytest.raises(ModalityError, match="without ultrasound attributes"):
        list(iter_frames(ot))


# -- synthetic screen captures with regions ---------------------------------------------
def test_screen_capture_dicom_regions_used_and_skipped(tmp_path, seg):
    screen, truth, d = make_capture(3, "rect")
    x, y, w, h = d["box"]
    regions = [tissue(x, y, x + w - 1, y + h - 1, 0.008),
               tissue(x + w + 5, y, x + w + 30, y + 150, dtype=14),          # the grey bar
               tissue(0, 0, 100, 40, units=1),                                 # percent: refused
               tissue(x + 10, y + 10, x + 60, y + 60, 0.008)]                  # inside the first, same spacing
    path = write_dicom(tmp_path / "cap.dcm", screen, "RGB", pixel_spacing=(0.5, 0.5), regions=regions,
                       manufacturer="btseg test")
    (frame,) = iter_frames(path)
    reasons = {s["index"]: s["reason"] for s in frame.dicom.skipped}
    assert [r.index for r in frame.dicom.regions] == [0]
    assert "color bar" in reasons[1] and "percent" in reasons[2] and "inside or across tissue region 0" in reasons[3]
    out = seg.segment(frame)
    assert out.area_px > 0 and outside(out.mask, [d["box"]]) == 0
    assert out.area_mm2 == pytest.approx(out.area_px * 0.08 ** 2)  # the region's spacing, not PixelSpacing


def test_two_tissue_regions_each_at_its_own_spacing(tmp_path, seg):
    screen = np.zeros((200, 400), np.uint8)
    left, right = make_capture(1, "rect")[0][..., 0], make_capture(2, "rect")[0][..., 0]
    screen[20:180, 10:190], screen[20:180, 210:390] = left[100:260, 300:480], right[150:310, 300:480]
    path = write_dicom(tmp_path / "dual.dcm", screen, pixel_spacing=None,
                       regions=[tissue(10, 20, 189, 179, 0.01), tissue(210, 20, 389, 179, 0.02)])
    out = seg.segment(next(iter_frames(path)))
    a, b = out.regions
    assert a["area_mm2"] == pytest.approx(a["area_px"] * 0.01) and b["area_mm2"] == pytest.approx(b["area_px"] * 0.04)
    assert out.area_px == a["area_px"] + b["area_px"] and out.area_mm2 == pytest.approx(a["area_mm2"] + b["area_mm2"])
    assert outside(out.mask, [(10, 20, 180, 160), (210, 20, 180, 160)]) == 0 and out.spacing_mm is None


def test_no_usable_region_is_an_error_naming_each_reason(tmp_path, seg):
    path = write_dicom(tmp_path / "bad.dcm", np.zeros((64, 64), np.uint8),
                       regions=[tissue(0, 0, 63, 63, units=0), tissue(0, 0, 5, 5), tissue(0, 0, 63, 63, fmt=3)])
    with pytest.raises(DataError, match=r"no usable 2-D tissue region.*units x=none.*less than 16x16.*spectral"):
        seg.segment(next(iter_frames(path)))


# -- roi -------------------------------------------------------------------------------
def test_parse_roi():
    assert parse_roi("10, 20,30,40") == (10, 20, 30, 40) and parse_roi("AUTO") == "auto" and parse_roi(None) is None
    for bad in ("1,2,3", "a,b,c,d", "-1,0,5,5", "0,0,0,5", "1.5,0,5,5"):
        with pytest.raises(ConfigError, match="X,Y,W,H"):
            parse_roi(bad)


@pytest.mark.parametrize("roi", [(0, 0, 129, 10), (120, 0, 20, 20), (0, 90, 10, 10), (5, 5, 0, 3)])
def test_roi_outside_the_image_names_value_and_size(seg, images, roi):
    img = images[0]  # 96 x 128
    with pytest.raises(DataError, match=r"roi .* (outside the 128x96|empty)"):
        seg.segment(img, roi=roi)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_roi_confines_the_mask(seg, images, data):
    img = images[data.draw(st.integers(0, len(images) - 1))]
    H, W = img.shape[:2]
    x, y = data.draw(st.integers(0, W - 16)), data.draw(st.integers(0, H - 16))
    w, h = data.draw(st.integers(16, W - x)), data.draw(st.integers(16, H - y))
    out = seg.segment(img, spacing_mm=0.2, roi=(x, y, w, h))
    assert out.mask.shape == (H, W) and outside(out.mask, [(x, y, w, h)]) == 0
    assert out.area_mm2 == pytest.approx(out.area_px * 0.04)
    crop = seg.segment(img[y:y + h, x:x + w], spacing_mm=0.2)  # the same as segmenting the crop
    assert np.array_equal(out.mask[y:y + h, x:x + w], crop.mask)


# -- roi auto -----------------------------------------------------------------------------
def test_auto_roi_finds_the_image_on_screen_captures():
    ious = []
    for seed in range(6):
        screen, truth, _ = make_capture(seed)
        ious.append(mask_iou(detect_roi(screen).full, truth))
    assert np.mean(ious) >= 0.9 and min(ious) >= 0.85, ious


def test_auto_roi_confines_the_mask_and_refuses_a_blank_screen(seg):
    screen, truth, _ = make_capture(8)
    out = seg.segment(screen, roi="auto")
    found = detect_roi(screen)
    assert out.regions[0]["source"] == "auto" and out.regions[0]["box"] == list(found.box)
    assert not (out.mask & ~found.full).any(), "no mask pixel outside the detected sector/rectangle"
    assert out.area_px > 0 and mask_iou(found.full, truth) >= 0.9
    with pytest.raises(DataError, match="no textured"):
        seg.segment(np.zeros((240, 320), np.uint8), roi="auto")


def test_regions_roi_auto_and_sources_need_no_torch(exported_package):
    code = (
        "import sys, numpy as np\n"
        "from btseg.runtime import Segmenter\n"
        "from btseg.runtime.sources import FrameSource\n"
        f"s = Segmenter.load({str(exported_package)!r}, backend='onnxruntime', threads=1)\n"
        "rng = np.random.default_rng(0)\n"
        "screen = np.zeros((240, 320), np.uint8); screen[40:200, 60:260] = rng.integers(0, 255, (160, 200))\n"
        "assert s.segment(screen, roi='auto').regions[0]['source'] == 'auto'\n"
        "for f in FrameSource([screen] * 3, fps=100):\n"
        "    s.segment(f, roi=(60, 40, 200, 160))\n"
        "bad = [m for m in ('torch', 'btseg.data.phantom', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_detected_roi_is_reused_for_later_frames_of_its_size(seg):
    screen, truth, _ = make_capture(0)
    found = detect_roi(screen)
    out = seg.segment(np.roll(screen, 2, axis=0), roi=found)
    assert out.regions[0]["source"] == "auto" and not (out.mask & ~found.full).any()
    with pytest.raises(DataError, match="detect again"):
        seg.segment(screen[:400], roi=found)


_coord = st.integers(-50, 700)


@pytest.mark.filterwarnings("ignore:Invalid value")  # negative UL coordinates: pydicom warns, we must cope
@settings(max_examples=150, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "RegionSpatialFormat": st.integers(0, 6), "RegionDataType": st.sampled_from([1, 1, 2, 14, 99]),
    "RegionLocationMinX0": _coord, "RegionLocationMinY0": _coord, "RegionLocationMaxX1": _coord,
    "RegionLocationMaxY1": _coord, "PhysicalUnitsXDirection": st.sampled_from([3, 3, 0, 1, 4, 12]),
    "PhysicalUnitsYDirection": st.sampled_from([3, 3, 0, 2]),
    "PhysicalDeltaX": st.floats(allow_nan=True, allow_infinity=True, width=64),
    "PhysicalDeltaY": st.floats(-1, 1)}), max_size=5))
def test_any_region_header_is_used_inside_the_image_or_skipped_with_a_reason(items):
    from pydicom.dataset import Dataset

    from btseg.runtime.dicom_meta import ultrasound_regions
    from btseg.runtime.regions import intersect

    ds = Dataset()
    ds.Rows, ds.Columns = 480, 640
    ds.SequenceOfUltrasoundRegions = region_items(items)
    try:
        has, used, skipped = ultrasound_regions(ds)
    except DataError as e:  # the overlap rule refuses overlaps at different spacings
        assert "different spacings" in str(e)
        return
    assert has and len(used) + len(skipped) == len(items)
    assert all(s["reason"] for s in skipped)
    for r in used:
        x, y, w, h = r.box
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480 and min(w, h) >= 16
        assert all(np.isfinite(r.spacing_mm)) and 1e-4 <= min(r.spacing_mm) and max(r.spacing_mm) <= 10
        assert items[r.index]["PhysicalUnitsXDirection"] == items[r.index]["PhysicalUnitsYDirection"] == 3
    assert all(intersect(a.box, b.box) is None for i, a in enumerate(used) for b in used[i + 1:])


def test_auto_roi_on_the_philips_screen_stays_inside_its_tissue_region():
    """A real vendor screen: what auto finds is inside the declared tissue region (no header,
    no text panel, no grey bar), but only the textured top of the fan (measured: 7.7% of the
    region): the dark far field has no texture.  DICOM regions, when present, are exact."""
    (frame,) = iter_frames(real("examples_palette.dcm"))
    found = detect_roi(frame.image)
    x, y, w, h = frame.dicom.regions[0].box
    assert found.full[y:y + h, x:x + w].sum() == found.full.sum() > 0
