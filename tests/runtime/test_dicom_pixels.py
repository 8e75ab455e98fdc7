"""Issue 20, class 2: DICOM pixel values mapped as a viewer maps them, or refused by name.

The oracle is the DICOM standard's formulas (PS3.3 C.11.1 rescale, C.11.2.1.2 LINEAR
window), written out here; the code under test calls pydicom's apply_modality_lut /
apply_voi_lut.  On the old reader a window was ignored (a 16/16 US holding 0..4095 came out
near black), signed values below 0 were clipped, and nothing was refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg.errors import DataError
from btseg.runtime.inputs import iter_frames, read_dicom
from dicom_util import write_dicom

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "data" / "MR_small_jpeg_lossless_sv1.dcm"  # dcmcjpeg +e1 of pydicom's MR_small


def expected(stored, bits_stored, signed, slope, intercept, window, mono1, out8):
    """What a viewer shows, per the standard, as a fraction 0..1 then the output dtype."""
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
    x = stored.astype(np.float64) * slope + intercept
    lo, hi = sorted((lo * slope + intercept, hi * slope + intercept))
    if window:
        c, w = window
        t = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
        t[x <= c - 0.5 - (w - 1) / 2] = 0
        t[x > c - 0.5 + (w - 1) / 2] = 1
    else:
        t = (x - lo) / (hi - lo)
    t = 1 - t if mono1 else t
    return np.rint(t * (255 if out8 else 65535))


def test_us_16_of_16_holding_0_to_4095_with_a_window_is_shown_as_the_viewer_shows_it(tmp_path):
    ramp = np.tile(np.linspace(0, 4095, 64).astype(np.uint16), (48, 1))
    path = write_dicom(tmp_path / "us.dcm", ramp, bits_stored=16, attrs={"WindowCenter": 2048, "WindowWidth": 4096})
    (f,) = iter_frames(path)
    assert f.image.dtype == np.uint16
    assert f.image.max() == 65535 and abs(float(f.image.mean()) / 65535 - 0.5) < 0.02  # not near black
    want = expected(ramp, 16, False, 1, 0, (2048, 4096), False, False)
    assert np.abs(f.image.astype(np.float64) - want).max() <= 1
    assert f.dicom.record()["pixels"]["voi"].startswith("window center 2048 width 4096")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(alloc=st.sampled_from([8, 16, 32]), data=st.data(), signed=st.booleans(),
       rescale=st.one_of(st.none(), st.tuples(st.sampled_from([0.5, 1.0, 2.0, -1.0]), st.integers(-1024, 1024))),
       window=st.booleans(), mono1=st.booleans())
def test_pixel_encodings_property(tmp_path, alloc, data, signed, rescale, window, mono1):
    bits = data.draw(st.integers(2 if signed else 1, alloc), label="bits_stored")
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    stored = data.draw(st.lists(st.integers(lo, hi), min_size=64, max_size=64), label="values")
    dtype = np.dtype(f"{'i' if signed else 'u'}{alloc // 8}")
    arr = np.array(stored, dtype=dtype).reshape(8, 8)
    attrs = {}
    slope, intercept = rescale or (1.0, 0)
    if rescale:
        attrs.update(RescaleSlope=slope, RescaleIntercept=intercept)
    win = None
    if window:
        a, b = sorted(v * slope + intercept for v in (lo, hi))
        c = data.draw(st.floats(a, b, allow_nan=False), label="center")
        w = data.draw(st.floats(2, max(3.0, b - a), allow_nan=False), label="width")
        win = (round(c, 2), round(w, 2))
        attrs.update(WindowCenter=win[0], WindowWidth=win[1])
    path = write_dicom(tmp_path / "p.dcm", arr, "MONOCHROME1" if mono1 else "MONOCHROME2", bits_stored=bits,
                       attrs=attrs)
    img, _ = read_dicom(path)
    # an identity rescale (slope 1, intercept 0) maps nothing: the data stay 8-bit, as a viewer shows them
    out8 = bits <= 8 and (not rescale or (slope, intercept) == (1.0, 0)) and not window
    assert img.dtype == (np.uint8 if out8 else np.uint16)
    want = expected(arr, bits, signed, slope, intercept, win, mono1, out8)
    assert np.abs(img[0].astype(np.float64) - want).max() <= 1


def test_signed_values_below_zero_are_kept(tmp_path):
    arr = np.array([[-2048, -1, 0, 2047]] * 16, np.int16)
    img, _ = read_dicom(write_dicom(tmp_path / "s.dcm", arr, bits_stored=12))
    assert img[0, 0, 0] == 0 and img[0, 0, 3] == 65535 and 32700 < img[0, 0, 1] < img[0, 0, 2] < 32900


def test_32_bit_does_not_wrap(tmp_path):
    arr = np.array([[0, 2 ** 31, 2 ** 32 - 1]] * 8, np.uint32)
    img, _ = read_dicom(write_dicom(tmp_path / "b32.dcm", arr))
    assert list(img[0, 0]) == [0, 32768, 65535]


def test_bits_stored_below_8_fills_the_display_range(tmp_path):
    arr = np.array([[0, 7, 15]] * 8, np.uint8)
    img, _ = read_dicom(write_dicom(tmp_path / "b4.dcm", arr, bits_stored=4))
    assert img.dtype == np.uint8 and list(img[0, 0]) == [0, 119, 255]


def test_voi_lut_sequence_and_modality_lut_sequence(tmp_path):
    from pydicom.dataset import Dataset

    arr = np.array([[0, 1, 2, 3]] * 8, np.uint16)
    lut = Dataset()
    lut.LUTDescriptor, lut.LUTData = [4, 0, 12], np.array([0, 4095, 100, 2000], "<u2").tobytes()  # a non-monotone LUT: only a LUT gives it
    img, _ = read_dicom(write_dicom(tmp_path / "voi.dcm", arr, bits_stored=2, attrs={"VOILUTSequence": [lut]}))
    assert np.abs(img[0, 0].astype(int) - np.rint(np.array([0, 4095, 100, 2000]) / 4095 * 65535)).max() <= 1
    mlut = Dataset()
    mlut.LUTDescriptor, mlut.LUTData, mlut.ModalityLUTType = [4, 0, 16], np.array([4095, 0, 2000, 100], "<u2").tobytes(), "US"
    img, _ = read_dicom(write_dicom(tmp_path / "mod.dcm", arr, bits_stored=2, attrs={"ModalityLUTSequence": [mlut]}))
    assert list(img[0, 0]) == [4095, 0, 2000, 100]  # a 16-bit LUT: its output range is 0..65535


@pytest.mark.parametrize("attrs, frames, name", [
    ({"PhotometricInterpretation": "HSV"}, None, "PhotometricInterpretation"),
    ({"BitsStored": 20}, None, "BitsStored"),
    ({"BitsAllocated": 12}, None, "BitsAllocated"),
    ({"PixelRepresentation": 2}, None, "PixelRepresentation"),
    ({"RescaleSlope": 0, "RescaleIntercept": 0}, None, "RescaleSlope"),
    ({"WindowCenter": 100, "WindowWidth": 0}, None, "WindowWidth"),
    ({"WindowCenter": 100, "WindowWidth": 50, "VOILUTFunction": "CUBIC"}, None, "VOILUTFunction"),
    ({"PhotometricInterpretation": "MONOCHROME2"}, np.zeros((16, 16, 3), np.uint8), "SamplesPerPixel"),
])
def test_unsupported_encodings_are_refused_with_the_attribute_named(tmp_path, attrs, frames, name):
    arr = frames if frames is not None else np.zeros((16, 16), np.uint16)
    path = write_dicom(tmp_path / "x.dcm", arr, attrs=attrs)
    with pytest.raises(DataError, match=name):
        list(iter_frames(path))


@pytest.mark.parametrize("name", ["MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm",
                                  "lossless_sv1"])
def test_compressed_syntaxes_decode_with_the_dicom_extra(name):
    from pydicom.data import get_testdata_file

    ref, _ = read_dicom(get_testdata_file("MR_small.dcm"))
    path = FIXTURE if name == "lossless_sv1" else get_testdata_file(name)
    img, _ = read_dicom(path)
    assert np.array_equal(img, ref)


def test_a_missing_decoder_names_the_syntax_and_every_package(tmp_path):
    """The decoders are hidden from a fresh interpreter (as when btseg[dicom] is not installed)."""
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in ("pylibjpeg", "libjpeg", "openjpeg", "rle", "jpeg_ls",
                                                            "gdcm"))
    code = (f"import sys; {hide}\nfrom btseg.runtime.inputs import read_dicom\nfrom btseg.errors import DataError\n"
            f"try:\n    read_dicom({str(FIXTURE)!r})\nexcept DataError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120).stdout
    assert "JPEG Lossless, Non-Hierarchical, First-Order Prediction" in out and "1.2.840.10008.1.2.4.70" in out
    for pkg in ("pylibjpeg-libjpeg", "pylibjpeg-openjpeg", "pylibjpeg-rle", "gdcm", "btseg[dicom]"):
        assert pkg in out, out
    assert len(out.strip().splitlines()) == 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.floats(0.05, 1)))
def test_damaged_dicom_is_a_data_error_or_frames_never_another_exception(tmp_path, edits, cut):
    from dicom_util import write_jpeg_cine

    frames = [np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1)) for _ in range(3)]
    path = write_jpeg_cine(tmp_path / "d.dcm", frames)
    data = bytearray(path.read_bytes())
    for where, value in edits:
        data[132 + int(where * (len(data) - 133))] = value  # after the preamble and "DICM"
    path.write_bytes(bytes(data[:int(len(data) * cut)] if cut else data))
    try:
        got = list(iter_frames(path, errors="yield", allow_modalities=["*"]))
    except DataError as e:
        assert str(path) in str(e)
        return
    assert all((f.error is None) == (f.image.size > 0) for f in got)
