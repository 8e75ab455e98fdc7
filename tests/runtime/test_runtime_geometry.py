"""Geometry sanity (issue 20 class 6): spacing range, the overlap rule for ultrasound
regions, adjacent regions sharing a column, strict JSON records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from btseg.errors import DataError
from btseg.runtime.dicom_meta import ultrasound_regions
from btseg.runtime.postprocess import SPACING_RANGE_MM, normalize_spacing
from btseg.runtime.regions import intersect
from dicom_util import region_items


def tissue(x0, y0, x1, y1, delta_cm=0.01):
    return {"RegionSpatialFormat": 1, "RegionDataType": 1, "RegionLocationMinX0": x0, "RegionLocationMinY0": y0,
            "RegionLocationMaxX1": x1, "RegionLocationMaxY1": y1, "PhysicalUnitsXDirection": 3,
            "PhysicalUnitsYDirection": 3, "PhysicalDeltaX": delta_cm, "PhysicalDeltaY": delta_cm}


def regions(*items, rows=200, cols=400):
    ds = Dataset()
    ds.Rows, ds.Columns = rows, cols
    ds.SequenceOfUltrasoundRegions = region_items(list(items))
    return ultrasound_regions(ds)


@pytest.mark.parametrize("delta", [1e200, 1e-300, 1e-7, 2.0, float("inf"), float("nan")])
def test_an_implausible_region_spacing_is_skipped_with_the_range_named(delta):
    _, used, skipped = regions(tissue(10, 10, 100, 100, delta))
    assert not used and "expected finite values in [1e-05, 1] cm" in skipped[0]["reason"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                 st.tuples(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e300, 1e300))))
def test_any_spacing_is_refused_or_in_the_plausible_range_and_gives_finite_strict_json(spacing):
    from btseg.io import json_text

    try:
        s = normalize_spacing(spacing)
    except DataError as e:
        assert "expected finite mm per pixel in [0.0001, 10]" in str(e)
        return
    lo, hi = SPACING_RANGE_MM
    assert all(lo <= v <= hi for v in s)
    area = 512 * 512 * s[0] * s[1]  # the largest area of a 512x512 frame stays finite and > 0
    assert math.isfinite(area) and area > 0
    json.loads(json_text({"area_mm2": area}, strict=True))


def test_predict_spacing_out_of_range_is_exit_2():
    from btseg.cli.predict import main

    for bad in ("1e200", "1e-300"):
        res = CliRunner().invoke(main, ["--spacing", bad, "--out", "/tmp/never-written-btseg"])
        assert res.exit_code == 2 and "--spacing" in res.output and "[0.0001, 10]" in res.output, res.output


def test_strict_json_refuses_nan_and_infinity(tmp_path):
    from btseg.errors import ArtifactError
    from btseg.io import write_json

    for bad in (float("nan"), float("inf")):
        with pytest.raises(ArtifactError, match="not finite"):
            write_json(tmp_path / "r.json", {"area_mm2": bad}, strict=True)
        assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("second_delta", [0.01, 0.02])
def test_adjacent_regions_sharing_a_column_are_both_used(second_delta):
    _, used, skipped = regions(tissue(10, 20, 200, 179), tissue(200, 20, 389, 179, second_delta))
    assert not skipped and [r.box for r in used] == [(10, 20, 191, 160), (201, 20, 189, 160)]
    assert "shared with tissue region 0" in used[1].note


def test_overlapping_regions_with_different_spacings_are_refused():
    with pytest.raises(DataError, match=r"overlap by 91x91 px with different spacings"):
        regions(tissue(10, 10, 300, 190, 0.01), tissue(50, 50, 140, 140, 0.02))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 399), st.integers(0, 199), st.integers(16, 300), st.integers(16, 180),
                          st.sampled_from([0.01, 0.01, 0.02])), min_size=1, max_size=4))
def test_used_regions_never_overlap_and_a_refusal_names_different_spacings(boxes):
    items = [tissue(x, y, x + w - 1, y + h - 1, d) for x, y, w, h, d in boxes]
    try:
        _, used, skipped = regions(*items)
    except DataError as e:
        assert "different spacings" in str(e)
        return
    assert len(used) + len(skipped) == len(items)
    assert all(intersect(a.box, b.box) is None for i, a in enumerate(used) for b in used[i + 1:])
    cover = np.zeros((200, 400), bool)
    for r in used:
        x, y, w, h = r.box
        cover[y:y + h, x:x + w] = True
    for r in used:  # a trimmed region keeps all its pixels that no earlier region has
        x0, y0, x1, y1 = (items[r.index][k] for k in ("RegionLocationMinX0", "RegionLocationMinY0",
                                                       "RegionLocationMaxX1", "RegionLocationMaxY1"))
        assert cover[y0:min(y1, 199) + 1, x0:min(x1, 399) + 1].all()
