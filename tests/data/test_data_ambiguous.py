"""Two files that map to one key never pair silently with one mask (BUSI, Dataset B, folder)."""

from __future__ import annotations

import shutil

import pytest

from btseg.data import SkippedFilesWarning, open_dataset
from btseg.data.layouts import dataset_files
from btseg.errors import DataError


def test_datasetb_two_names_one_key(datasetb_root, tmp_path):
    root = shutil.copytree(datasetb_root, tmp_path / "b")
    first = sorted((root / "original").glob("*.png"))[0]  # 000001.png -> key "1"
    twin = root / "original" / f"{int(first.stem)}.png"  # 1.png -> key "1" too
    shutil.copy(first, twin)
    with pytest.raises(DataError, match=rf"key '1' is shared with {twin.name}|key '1' is shared with {first.name}"):
        open_dataset(root)
    with pytest.warns(SkippedFilesWarning) as rec:
        ds = open_dataset(root, skip_bad=True)
    msg = str(rec[0].message)
    assert first.name in msg and twin.name in msg
    assert not {first.name, twin.name} & {p.split("/")[-1] for p in ds.ids}  # neither pairs


def test_datasetb_two_masks_one_key(datasetb_root, tmp_path):
    root = shutil.copytree(datasetb_root, tmp_path / "b")
    mask = sorted((root / "GT").glob("*.png"))[0]
    shutil.copy(mask, root / "GT" / (mask.stem + ".PNG"))
    with pytest.raises(DataError, match=rf"{mask.stem}.PNG|ambiguous"):
        open_dataset(root)


def test_busi_same_stem_two_extensions(busi_root, tmp_path):
    root = shutil.copytree(busi_root, tmp_path / "Dataset_BUSI_with_GT")
    img = sorted((root / "benign").glob("benign (1).png"))[0]
    shutil.copy(img, img.with_suffix(".bmp"))
    with pytest.raises(DataError, match=r"benign \(1\)\.(png|bmp): image key 'benign \(1\)' is shared"):
        open_dataset(root)
    mask = root / "benign" / "benign (2)_mask.png"
    shutil.copy(mask, mask.with_suffix(".jpg"))
    with pytest.warns(SkippedFilesWarning, match=r"benign \(2\)_mask\.jpg"):
        open_dataset(root, skip_bad=True)


def test_folder_image_twins_and_mask_twins(folder_root, tmp_path):
    root = shutil.copytree(folder_root, tmp_path / "f")
    img = sorted((root / "images").iterdir())[0]
    shutil.copy(img, img.with_suffix(".tif"))
    with pytest.raises(DataError, match="is shared with"):
        open_dataset(root)
    img.with_suffix(".tif").unlink()
    mask = next(p for p in (root / "masks").iterdir() if p.stem.startswith(img.stem))
    shutil.copy(mask, root / "masks" / f"{img.stem}{mask.suffix}" if "_mask" in mask.stem
                else root / "masks" / f"{img.stem}_mask{mask.suffix}")  # masks/a.png + masks/a_mask.png
    with pytest.raises(DataError, match="mask key"):
        open_dataset(root)


@pytest.mark.parametrize("layout", ["busi", "datasetb", "folder"])
def test_dataset_files_lists_images_never_masks(layout, busi_root, datasetb_root, folder_root):
    root = {"busi": busi_root, "datasetb": datasetb_root, "folder": folder_root}[layout]
    found, images, masks = dataset_files(root)
    assert found == layout and images and masks and not set(images) & set(masks)
    ds = open_dataset(root)
    assert {str(p) for p in images} >= {str(s.path) for s in (ds[i] for i in range(min(3, len(ds))))}
    assert all("_mask" not in p.stem for p in images) and all(p.parent.name != "GT" for p in images)
