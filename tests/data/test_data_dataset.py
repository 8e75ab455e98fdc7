"""The common lazy Dataset and layout auto-detection."""

from __future__ import annotations

import pytest

from btseg.data import Dataset, Sample, open_dataset
from btseg.errors import DataError


def test_auto_detects_every_layout(busi_root, datasetb_root, folder_root):
    assert [open_dataset(r).layout for r in (busi_root, datasetb_root, folder_root)] == ["busi", "datasetb", "folder"]


def test_no_layout_lists_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match="no known dataset layout; looked for BUSI .* Dataset B .* folder"):
        open_dataset(tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        open_dataset(tmp_path / "nope")
    with pytest.raises(DataError, match="layout 'isbi'"):
        open_dataset(tmp_path, layout="isbi")


def test_sequence_protocol_and_cache(busi_root):
    ds = open_dataset(busi_root, cache=True)
    assert isinstance(ds, Dataset) and len(ds) == 24
    assert ds[-1].path == ds[23].path and ds[0] is ds[0]  # cached
    assert isinstance(ds[2:5], Dataset) and len(ds[2:5]) == 3
    assert all(isinstance(s, Sample) for s in ds) and len(list(ds)) == 24
    with pytest.raises(IndexError):
        ds[24]
    assert open_dataset(busi_root)[0] is not open_dataset(busi_root)[0]


def test_subset_and_describe(busi_root):
    ds = open_dataset(busi_root)
    sub = ds.subset(ds.ids[:3])
    assert sub.ids == ds.ids[:3]
    with pytest.raises(DataError, match="not in this dataset"):
        ds.subset(["benign/nope.png"])
    d = ds.describe()
    assert d["layout"] == "busi" and d["root"] == str(busi_root) and d["n"] == 24
