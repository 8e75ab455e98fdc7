"""BUSI loader on real files: names with spaces and parentheses, multi-mask OR, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import clone, disc, write_png

from btseg.data import SkippedFilesWarning, open_dataset
from btseg.errors import DataError


def test_root_may_be_the_busi_dir_or_its_parent(busi_root):
    a, b = open_dataset(busi_root), open_dataset(busi_root.parent)
    assert a.layout == b.layout == "busi"
    assert a.ids == b.ids and len(a) == 24
    assert a.describe()["counts"] == {"benign": 13, "malignant": 6, "normal": 5}
    assert "benign/benign (1).png" in a.ids


def test_masks_merge_with_or_and_names_with_spaces(tiny_busi):
    ds = open_dataset(tiny_busi)
    s = ds[ds.ids.index("benign/benign (1).png")]
    assert [p.name for p in s.mask_paths] == ["benign (1)_mask.png", "benign (1)_mask_1.png"]
    assert np.array_equal(s.mask, (disc() > 0) | (disc(c=(5, 5), r=3) > 0))
    assert s.image.dtype == np.uint8 and s.mask.dtype == bool and s.label == "benign"


def test_rgb_image_and_rgb_mask(tiny_busi):
    s = open_dataset(tiny_busi).subset(["malignant/malignant (2).png"])[0]
    # pure red: luma 0.299 * 200 = 60; a BGR/RGB mix-up would give 0.114 * 200 = 23
    assert s.image.shape == (32, 32) and abs(int(s.image[0, 0]) - 60) <= 1
    assert np.array_equal(s.mask, disc() > 0)


def test_include_normal_false(tiny_busi):
    ds = open_dataset(tiny_busi, include_normal=False)
    assert "normal" not in ds.labels and ds.counts()["normal"] == 0 and len(ds) == 4
    assert not open_dataset(tiny_busi)[-1].mask.any()  # normal masks are all zero


def test_missing_mask_names_the_image_and_skip_bad_warns(tiny_busi):
    (tiny_busi / "benign" / "benign (2)_mask.png").unlink()
    with pytest.raises(DataError, match=r"benign \(2\)\.png.*mask 'benign \(2\)_mask\.png' is missing"):
        open_dataset(tiny_busi)
    with pytest.warns(SkippedFilesWarning, match=r"(?s)1 bad item\(s\), skipped:.*benign \(2\)\.png"):
        ds = open_dataset(tiny_busi, skip_bad=True)
    assert len(ds) == 5 and len(ds.skipped) == 1


def test_size_mismatch(tiny_busi):
    write_png(tiny_busi / "malignant" / "malignant (1)_mask.png", np.zeros((16, 16), np.uint8))
    with pytest.raises(DataError, match=r"malignant \(1\)_mask\.png: mask size 16x16 differs"):
        open_dataset(tiny_busi)


def test_truncated_png_found_on_access_or_with_verify(tiny_busi):
    p = tiny_busi / "benign" / "benign (2).png"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    ds = open_dataset(tiny_busi)  # the header is intact: indexing succeeds, decoding cannot
    with pytest.raises(DataError, match=r"benign \(2\)\.png: (cannot decode|truncated)"):
        ds[ds.ids.index("benign/benign (2).png")]
    with pytest.raises(DataError, match=r"benign \(2\)\.png"):
        open_dataset(tiny_busi, verify=True)
    with pytest.warns(SkippedFilesWarning, match=r"(?s)1 bad item.*benign \(2\)\.png.*truncated"):
        assert len(open_dataset(tiny_busi, verify=True, skip_bad=True)) == 5


def test_unreadable_file(tiny_busi):
    (tiny_busi / "normal" / "normal (1).png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"normal \(1\)\.png: not a readable image"):
        open_dataset(tiny_busi)
    # excluding normal never even indexes the broken file
    assert len(open_dataset(tiny_busi, include_normal=False)) == 4


def test_orphan_mask_and_unknown_class_folder(tiny_busi):
    write_png(tiny_busi / "benign" / "benign (7)_mask.png", disc())
    with pytest.raises(DataError, match=r"benign \(7\)_mask\.png: mask without an image"):
        open_dataset(tiny_busi)
    (tiny_busi / "benign" / "benign (7)_mask.png").unlink()
    write_png(tiny_busi / "fibroadenoma" / "x.png", disc())
    with pytest.raises(DataError, match="unknown class folder 'fibroadenoma'"):
        open_dataset(tiny_busi, layout="busi")


def test_empty_dataset(tmp_path):
    (tmp_path / "benign").mkdir()
    with pytest.raises(DataError, match="no usable samples"):
        open_dataset(tmp_path, layout="busi")


def test_everything_bad_with_skip_bad_is_still_an_error(busi_root, tmp_path):
    root = clone(busi_root, tmp_path / "b")
    for p in root.glob("*/*_mask*.png"):
        p.unlink()
    with pytest.raises(DataError, match=r"24 bad item\(s\), and no usable sample") as e:
        open_dataset(root, skip_bad=True)
    assert len(str(e.value).splitlines()) == 25  # the summary, then every item named
