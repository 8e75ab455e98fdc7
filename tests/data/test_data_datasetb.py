"""Dataset B (UDIAT) loader: xlsx or csv labels, int or text image ids, bad rows."""

from __future__ import annotations

import openpyxl
import pytest
from conftest import clone

from btseg.data import SkippedFilesWarning, open_dataset
from btseg.data.datasetb import image_key
from btseg.errors import DataError


def test_loads_and_counts_labels_from_xlsx(datasetb_root):
    ds = open_dataset(datasetb_root)
    assert ds.layout == "datasetb" and len(ds) == 12
    wb = openpyxl.load_workbook(datasetb_root / "DatasetB.xlsx")
    types = [r[1].lower() for r in wb.active.iter_rows(min_row=2, values_only=True)]
    assert ds.counts() == {"benign": types.count("benign"), "malignant": types.count("malignant"), "normal": 0}
    s = ds[0]
    assert s.path.name == "000001.png" and s.mask_paths[0].parent.name == "GT" and s.mask.any()


def test_image_cell_may_be_int_or_text():
    assert image_key(1) == image_key(1.0) == image_key("000001") == image_key("000001.png") == "1"


def test_csv_labels(datasetb_root, tmp_path):
    root = clone(datasetb_root, tmp_path / "b")
    ref = open_dataset(root).labels
    rows = openpyxl.load_workbook(root / "DatasetB.xlsx").active.iter_rows(values_only=True)
    (root / "labels.csv").write_text("\n".join(f"{a},{b}" for a, b in rows) + "\n")
    (root / "DatasetB.xlsx").unlink()
    assert open_dataset(root).labels == ref


def test_unknown_type_names_the_file_and_row(datasetb_root, tmp_path):
    root = clone(datasetb_root, tmp_path / "b")
    wb = openpyxl.load_workbook(root / "DatasetB.xlsx")
    wb.active["B3"] = "Cyst"
    wb.save(root / "DatasetB.xlsx")
    with pytest.raises(DataError, match=r"DatasetB\.xlsx: row 3: .*unknown Type 'Cyst'"):
        open_dataset(root)
    with pytest.warns(SkippedFilesWarning, match="DatasetB.xlsx"):
        assert len(open_dataset(root, skip_bad=True)) == 11  # image 2 then has no label either


def test_missing_gt_mask(datasetb_root, tmp_path):
    root = clone(datasetb_root, tmp_path / "b")
    (root / "GT" / "000004.png").unlink()
    with pytest.raises(DataError, match=r"000004\.png: mask GT/000004\.png is missing"):
        open_dataset(root)
