"""Plain folder loader: mask naming variants, labels.csv, inferred labels, 16-bit images."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import clone, disc, write_png

from btseg.data import open_dataset
from btseg.data.folder import InferredLabelsWarning
from btseg.errors import DataError


def test_labelled_folder(folder_root):
    ds = open_dataset(folder_root)
    assert ds.layout == "folder" and len(ds) == 12 and not ds.labels_inferred
    assert sum(ds.counts().values()) == 12
    ds.require_labels()
    assert ds[0].mask.any()


def test_mask_named_like_the_image_and_16bit(tmp_path):
    img16 = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    write_png(tmp_path / "images" / "a.png", img16)
    write_png(tmp_path / "masks" / "a.png", (disc() > 0).astype(np.uint8))  # a 0/1 mask
    (tmp_path / "labels.csv").write_text("image,label\na.png,Malignant\n")
    s = open_dataset(tmp_path)[0]
    assert s.image.dtype == np.uint8 and s.image[-1, -1] == round(int(img16[-1, -1]) / 257)
    assert s.label == "malignant" and np.array_equal(s.mask, disc() > 0)


def test_without_labels_csv_labels_are_inferred_and_flagged(folder_root, tmp_path):
    root = clone(folder_root, tmp_path / "f")
    (root / "labels.csv").unlink()
    write_png(root / "images" / "empty.png", np.zeros((64, 64), np.uint8))
    write_png(root / "masks" / "empty_mask.png", np.zeros((64, 64), np.uint8))
    with pytest.warns(InferredLabelsWarning):
        ds = open_dataset(root)
    assert ds.labels_inferred and ds.describe()["labels"] == "inferred"
    assert ds.counts() == {"benign": 12, "malignant": 0, "normal": 1}
    with pytest.raises(DataError, match="no labels.csv"):
        ds.require_labels()


def test_unknown_label_in_csv(folder_root, tmp_path):
    root = clone(folder_root, tmp_path / "f")
    lines = (root / "labels.csv").read_text().splitlines()
    lines[2] = lines[2].split(",")[0] + ",lesion"
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"labels\.csv: row 3: .*unknown label 'lesion'"):
        open_dataset(root)


def test_missing_mask(folder_root, tmp_path):
    root = clone(folder_root, tmp_path / "f")
    (root / "masks" / "case_005_mask.png").unlink()
    with pytest.raises(DataError, match=r"case_005\.png: mask .* is missing"):
        open_dataset(root)
