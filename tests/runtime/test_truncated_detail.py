"""Decoder and truncation errors keep their detail (issue 20 class 7): a DICOM cut at any
byte of its header is one DataError naming the file, the element and the exception class,
never a bare pydicom/struct exception that aborts a batch."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.errors import DataError
from btseg.runtime.inputs import iter_frames
from dicom_util import write_dicom

REGION = {"RegionSpatialFormat": 1, "RegionDataType": 1, "RegionLocationMinX0": 0, "RegionLocationMinY0": 0,
          "RegionLocationMaxX1": 63, "RegionLocationMaxY1": 63, "PhysicalUnitsXDirection": 3,
          "PhysicalUnitsYDirection": 3, "PhysicalDeltaX": 0.01, "PhysicalDeltaY": 0.01}


@pytest.fixture(scope="module")
def dicom_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("dcm") / "a.dcm"
    write_dicom(path, np.random.default_rng(0).integers(0, 255, (2, 64, 64), dtype=np.uint8), regions=[REGION])
    return path.read_bytes()


def test_every_header_cut_is_a_named_data_error(dicom_bytes, tmp_path):
    path = tmp_path / "cut.dcm"
    header = len(dicom_bytes) - 2 * 64 * 64
    details = set()
    for cut in range(1, header + 8):
        path.write_bytes(dicom_bytes[:cut])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                for _ in iter_frames(path):
                    pass
            except DataError as e:
                assert str(e).startswith(str(path)), e
                assert "can only concatenate" not in str(e)
                if "truncated DICOM" in str(e):
                    assert "the file has" in str(e) and ("Exception" in str(e) or "Error" in str(e)
                                                         or "error:" in str(e)), e
                    details.add(str(e).split("(")[1].split(":")[0])
    assert any(d.startswith("element") for d in details)  # the element that was cut is named


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 400), st.binary(min_size=1, max_size=8))
def test_a_cut_header_with_junk_appended_is_a_data_error(dicom_bytes, tmp_path_factory, cut, junk):
    path = tmp_path_factory.mktemp("j") / "j.dcm"
    path.write_bytes(dicom_bytes[:132 + cut] + junk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            list(iter_frames(path))
        except DataError:
            pass


def test_predict_names_a_cut_dicom_and_segments_the_rest(dicom_bytes, tmp_path):
    from btseg.cli.predict import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "cut.dcm").write_bytes(dicom_bytes[:700])
    cv2.imwrite(str(src / "good.png"), np.full((64, 64), 90, np.uint8))
    res = CliRunner().invoke(main, [str(src), "--out", str(tmp_path / "out"), "--threads", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 1 and "cut.dcm" in res.output and "truncated DICOM" in res.output, res.output
    assert "Traceback" not in res.output and (tmp_path / "out" / "good_mask.png").exists()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(132, 1100), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupt_header_bytes_are_a_data_error(dicom_bytes, tmp_path_factory, flips):
    """Multi-valued or non-numeric attributes (a flipped VR or value byte) are DataErrors too."""
    data = bytearray(dicom_bytes)
    for at, value in flips:
        data[at] = value
    path = tmp_path_factory.mktemp("f") / "f.dcm"
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            list(iter_frames(path))
        except DataError as e:
            assert str(e).startswith(str(path))
