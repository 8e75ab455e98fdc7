"""Real-set defects written by the phantom: every bad item named (refused or skipped), every
other defect read right.  The loaders run for real on files on disk."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from btseg.data import SkippedFilesWarning, open_dataset
from btseg.data.phantom import synthesize
from btseg.data.phantom_defects import BAD, DEFECTS, GOOD, parse
from btseg.data.layouts import scan
from btseg.errors import ConfigError, DataError


def _expected_bad(summary: dict) -> set[str]:
    return {f for d in summary["defects"] if d["bad"] for f in d["files"]}


def _named(root: Path, items: list[tuple[str, str]]) -> set[str]:
    return {Path(p).relative_to(root).as_posix() for p, _ in items}


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """Every defect once (24 images, 64 px) and the same phantom without defects."""
    base = tmp_path_factory.mktemp("messy")
    s = synthesize(base / "messy", n=24, size=64, seed=5, workers=1, defects="all")
    synthesize(base / "clean", n=24, size=64, seed=5, workers=1)
    return base / "messy", base / "clean", s


def test_default_refuses_naming_every_bad_item(messy):
    root, _, s = messy
    assert len(_expected_bad(s)) == len(BAD)
    with pytest.raises(DataError) as e:
        open_dataset(root, verify=True)  # as every command opens a data set
    lines = str(e.value).splitlines()
    assert lines[0].endswith("skips them):") and f"{len(BAD)} bad item(s)" in lines[0]
    assert {Path(ln.strip().split(": ")[0]).relative_to(root).as_posix() for ln in lines[1:]} == _expected_bad(s)


def test_skip_bad_names_each_once_and_records_it(messy):
    root, _, s = messy
    with pytest.warns(SkippedFilesWarning) as w:
        ds = open_dataset(root, skip_bad=True, verify=True)
    msgs = [str(x.message) for x in w if issubclass(x.category, SkippedFilesWarning)]
    assert len(msgs) == 1
    for f in _expected_bad(s):
        assert msgs[0].count(f) == 1, f
    assert _named(root, ds.skipped) == _expected_bad(s)
    assert {r["file"] for r in ds.describe()["skipped"]} == _expected_bad(s)
    bad_items = {d["item"] for d in s["defects"] if d["bad"] and d["defect"] != "orphan_mask"}
    assert len(ds) == 24 - len(bad_items)


def test_good_defects_read_as_the_clean_item(messy):
    root, clean, s = messy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        ds = {x.id: x for x in open_dataset(root, skip_bad=True, verify=True)}
    ref = {x.id: x for x in open_dataset(clean)}
    for d in s["defects"]:
        if d["bad"]:
            continue
        a, b = ds[d["item"]], ref[d["item"]]
        assert a.image.shape == b.image.shape
        if d["defect"] == "mask_antialiased":
            inter, union = (a.mask & b.mask).sum(), (a.mask | b.mask).sum()
            assert inter / union > 0.9
        else:  # 1-bit, RGB, RGBA (mask in alpha) masks: exactly the clean mask
            assert np.array_equal(a.mask, b.mask), d
        if d["defect"] == "rgb_image":
            assert np.abs(a.image.astype(int) - b.image).max() <= 1
        elif d["defect"] in ("calipers", "markers", "text"):  # burned in: bright marks, same mask
            assert (a.image.astype(int) - b.image).max() > 50 and not np.array_equal(a.image, b.image)


def test_scan_lists_the_same_problems_without_raising(messy):
    root, _, s = messy
    ds, problems = scan(root)
    assert _named(root, problems) == _expected_bad(s) and ds is not None


def test_parse_names_groups_and_refuses_unknown():
    assert parse("all") == DEFECTS and parse("bad") == BAD and parse("good,size_mismatch") == GOOD + ("size_mismatch",)
    assert parse("") == () and parse(None) == ()
    with pytest.raises(ConfigError, match="nope"):
        parse("calipers,nope")


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(defects=st.sets(st.sampled_from(DEFECTS)), seed=st.integers(0, 50), verify=st.booleans())
def test_any_defect_combination_is_refused_or_skipped_exactly(tmp_path_factory, defects, seed, verify):
    root = tmp_path_factory.mktemp("combo") / "ph"
    s = synthesize(root, n=20, size=32, seed=seed, workers=1, defects=tuple(sorted(defects)))
    bad = _expected_bad(s) if defects else set()
    # truncation is found by decoding: at open with verify, else when the sample is read
    seen_at_open = {f for f in bad if verify or not any(d["defect"] == "truncated" and f in d["files"]
                                                         for d in s["defects"])}
    if seen_at_open:
        with pytest.raises(DataError) as e:
            open_dataset(root, verify=verify)
        named = {Path(ln.strip().split(": ")[0]).relative_to(root).as_posix() for ln in str(e.value).splitlines()[1:]}
        assert named == seen_at_open
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        ds = open_dataset(root, skip_bad=True, verify=True)
    assert _named(root, ds.skipped) == bad
    for x in ds:  # every item kept decodes, with a mask of its image's size
        assert x.mask.shape == x.image.shape and x.mask.dtype == bool
        assert x.mask.any() == (x.label != "normal")


DAMAGE = ("truncate_image", "truncate_mask", "resize_mask", "delete_mask")


def _damage(root: Path, layout: str, case: str, how: str) -> str:
    """Break one item of a folder / Dataset B layout; return the file a loader must name."""
    import cv2

    from btseg.io import write_png

    img, mask = ((root / "images" / f"{case}.png", root / "masks" / f"{case}_mask.png") if layout == "folder"
                 else (root / "original" / f"{case}.png", root / "GT" / f"{case}.png"))
    if how == "truncate_image":
        img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
        return img.relative_to(root).as_posix()
    if how == "truncate_mask":
        mask.write_bytes(mask.read_bytes()[: mask.stat().st_size // 2])
        return (img if layout == "datasetb" else mask).relative_to(root).as_posix()
    if how == "resize_mask":
        m = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        write_png(mask, cv2.resize(m, (m.shape[1] + 5, m.shape[0] - 3), interpolation=cv2.INTER_NEAREST))
        return mask.relative_to(root).as_posix()
    mask.unlink()
    return img.relative_to(root).as_posix()


@settings(max_examples=10, deadline=None)
@given(layout=st.sampled_from(("folder", "datasetb")),
       damage=st.dictionaries(st.integers(1, 12), st.sampled_from(DAMAGE), min_size=1, max_size=5))
def test_folder_and_datasetb_name_every_damaged_item(tmp_path_factory, layout, damage):
    from btseg.data.phantom import write_datasetb, write_folder

    root = tmp_path_factory.mktemp(layout) / "d"
    (write_folder if layout == "folder" else write_datasetb)(root, n=12, seed=3, size=32)
    cases = {i: (f"case_{i:03d}" if layout == "folder" else f"{i:06d}") for i in damage}
    named = {_damage(root, layout, cases[i], how) for i, how in damage.items()}
    with pytest.raises(DataError) as e:
        open_dataset(root, verify=True)
    lines = str(e.value).splitlines()
    assert f"{len(damage)} bad item(s)" in lines[0]
    got = {Path(ln.strip().split(": ")[0]).relative_to(root).as_posix() for ln in lines[1:]}
    # a damaged mask may be named as the mask or as its image; either names the item
    assert {Path(g).stem.replace("_mask", "") for g in got} == {Path(n).stem.replace("_mask", "") for n in named}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        ds = open_dataset(root, verify=True, skip_bad=True)
    assert len(ds) == 12 - len(damage) and len(ds.skipped) == len(damage)
