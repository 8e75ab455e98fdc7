"""inputs: arrays, image files, DICOM (single, cine, photometric, spacing), video, bad files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from btseg.errors import DataError
from btseg.runtime.inputs import iter_frames, read_dicom, read_image
from dicom_util import write_dicom


@pytest.fixture()
def gray():
    g = np.tile(np.arange(64, dtype=np.uint8)[None, :] * 4, (48, 1))
    g[10:20, 10:30] = 200
    return g


def test_array_is_one_frame(gray):
    (f,) = iter_frames(gray)
    assert f.image is gray and f.spacing_mm is None and f.name == "array"


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_color_files_come_back_rgb(tmp_path, suffix):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 250  # pure red in RGB order
    cv2.imwrite(str(tmp_path / f"a{suffix}"), rgb[..., ::-1])
    img = read_image(tmp_path / f"a{suffix}")
    assert img.shape == (32, 32, 3) and img[..., 0].mean() > 200 and img[..., 2].mean() < 30


def test_sixteen_bit_png_and_rgba_keep_their_type(tmp_path, gray):
    cv2.imwrite(str(tmp_path / "g16.png"), gray.astype(np.uint16) * 257)
    assert read_image(tmp_path / "g16.png").dtype == np.uint16
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png").shape == (48, 64, 4)


def test_bad_files(tmp_path, gray):
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    ok, png = cv2.imencode(".png", gray)
    (tmp_path / "cut.png").write_bytes(png.tobytes()[: len(png) // 2])
    ok, jpg = cv2.imencode(".jpg", gray)
    (tmp_path / "cut.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 2])
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 10)
    cases = {"text.png": "not a readable image", "empty.jpg": "empty file", "cut.png": "truncated",
             "cut.jpg": "truncated", "junk.dcm": "DICOM", "missing.png": "not found"}
    for name, match in cases.items():
        with pytest.raises(DataError, match=match):
            list(iter_frames(tmp_path / name))


def test_dicom_single_frame_with_pixel_spacing(tmp_path, gray):
    (f,) = iter_frames(write_dicom(tmp_path / "one.dcm", gray, pixel_spacing=(0.08, 0.09)))
    assert np.array_equal(f.image, gray) and f.spacing_mm == (0.08, 0.09) and f.name == "one"


def test_dicom_cine_gives_one_frame_each(tmp_path, gray):
    cine = np.stack([np.roll(gray, i, axis=1) for i in range(5)])
    frames = list(iter_frames(write_dicom(tmp_path / "cine.dcm", cine)))
    assert [f.name for f in frames] == [f"cine_f{i:04d}" for i in range(5)]
    assert all(np.array_equal(f.image, c) for f, c in zip(frames, cine))


def test_dicom_ultrasound_regions_spacing_cm_to_mm(tmp_path, gray):
    path = write_dicom(tmp_path / "r.dcm", gray, pixel_spacing=None, region_delta_cm=(0.012, 0.01))
    assert read_dicom(path)[1] == pytest.approx((0.1, 0.12))


def test_dicom_monochrome1_is_inverted(tmp_path, gray):
    img, _ = read_dicom(write_dicom(tmp_path / "m1.dcm", gray, photometric="MONOCHROME1"))
    assert np.array_equal(img[0], 255 - gray)
    img, _ = read_dicom(write_dicom(tmp_path / "m1_12.dcm", gray.astype(np.uint16) * 16, "MONOCHROME1", 12))
    expected = np.rint((4095 - gray.astype(np.float64) * 16) * 65535 / 4095).astype(np.uint16)
    assert img.dtype == np.uint16 and np.array_equal(img[0], expected)


def test_dicom_twelve_bit_is_scaled_to_the_uint16_range(tmp_path, gray):
    img, _ = read_dicom(write_dicom(tmp_path / "b12.dcm", gray.astype(np.uint16) * 16, bits_stored=12))
    assert img.dtype == np.uint16 and img.max() == round(int(gray.max()) * 16 * 65535 / 4095)


def test_dicom_ybr_becomes_rgb(tmp_path):
    from pydicom.pixels import convert_color_space

    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:8, :, 0], rgb[8:, :, 2] = 220, 200
    ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
    (f,) = iter_frames(write_dicom(tmp_path / "c.dcm", ybr, photometric="YBR_FULL"))
    assert np.abs(f.image.astype(int) - rgb).max() <= 3


def test_dicom_without_pixel_data(tmp_path, gray):
    with pytest.raises(DataError, match="no pixel data"):
        list(iter_frames(write_dicom(tmp_path / "nopix.dcm", gray, pixels=False)))


def test_dicom_truncated_pixel_data(tmp_path, gray):
    path = write_dicom(tmp_path / "t.dcm", np.stack([gray] * 3))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - gray.size])
    with pytest.raises(DataError, match="DICOM"):
        list(iter_frames(path))


def test_video_frames(tmp_path, gray):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(4):
        frame = np.dstack([np.roll(gray, i, axis=1)] * 3)
        frame[..., 2] = 255  # red channel in BGR: must come back as channel 0
        w.write(frame)
    w.release()
    frames = list(iter_frames(path))
    assert [f.name for f in frames] == [f"clip_f{i:04d}" for i in range(4)]
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image[..., 0].mean() > 240


def test_bad_video(tmp_path):
    (tmp_path / "bad.avi").write_bytes(b"RIFF0000AVI junk")
    with pytest.raises(DataError, match="video"):
        list(iter_frames(tmp_path / "bad.avi"))


# -- accepted ranges and bounds (issue 9) ------------------------------------------------
def test_float_range_is_checked_not_guessed(gray):
    from btseg.runtime.inputs import check_image, to_unit_range

    f255 = gray.astype(np.float32)  # 0..255 held in float: would give an empty mask if taken as 0..1
    with pytest.raises(DataError, match=r"values in \[0, 252\]; float images must be in 0..1"):
        check_image(f255)
    unit = to_unit_range(f255, (0, 255))
    assert unit.dtype == np.float32 and 0 <= unit.min() and unit.max() <= 1
    np.testing.assert_allclose(unit * 255, f255, atol=1e-3)
    assert check_image(gray.astype(np.float64) / 255.0).dtype == np.float64
    for bad in (np.nan, np.inf, -np.inf):
        img = unit.copy()
        img[3, 3] = bad
        with pytest.raises(DataError, match="NaN or inf"):
            check_image(img)
    with pytest.raises(DataError, match="outside value_range"):
        to_unit_range(f255, (0, 100))
    with pytest.raises(DataError, match="value_range"):
        to_unit_range(f255, (1, 1))
    assert check_image(np.full((4, 4), 65535, np.uint16)).max() == 65535  # uint16: the full range


def test_dicom_size_is_checked_from_the_header(tmp_path, gray):
    from btseg.imageio import Limits

    p = write_dicom(tmp_path / "cine.dcm", np.stack([gray] * 4))
    assert read_dicom(p)[0].shape == (4, 48, 64)
    with pytest.raises(DataError, match=r"48 .*limit|64x48 = 0.0 MP"):
        read_dicom(p, Limits(max_pixels=1000))
    with pytest.raises(DataError, match="4 frames of 64x48"):
        read_dicom(p, Limits(max_pixels=10_000, max_total_pixels=10_000))
    import pydicom

    ds = pydicom.dcmread(p)
    ds.Rows, ds.Columns = 60000, 60000  # a header that lies: refused before the pixels are touched
    ds.save_as(tmp_path / "huge.dcm")
    with pytest.raises(DataError, match="60000x60000"):
        list(iter_frames(tmp_path / "huge.dcm"))


def test_special_files_are_per_input_errors(tmp_path, gray):
    import os

    os.mkfifo(tmp_path / "pipe")  # no suffix: the DICOM-preamble sniff must not block on it
    (tmp_path / "zero.dcm").symlink_to("/dev/zero")
    (tmp_path / "d.avi").mkdir()
    for name, why in (("pipe", "FIFO"), ("zero.dcm", "character device"), ("d.avi", "directory")):
        with pytest.raises(DataError, match=why):
            list(iter_frames(tmp_path / name))


def test_video_frame_size_is_bounded(tmp_path, gray):
    from btseg.imageio import Limits

    p = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        w.write(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    w.release()
    assert len(list(iter_frames(p))) == 3
    with pytest.raises(DataError, match="64x48"):
        list(iter_frames(p, limits=Limits(max_pixels=100)))
