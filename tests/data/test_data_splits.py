"""Splits: deterministic, stratified, duplicates kept together, k-fold coverage, JSON."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
from conftest import clone

from btseg.data import KFold, Splits, find_duplicates, kfold, make_splits, open_dataset
from btseg.errors import ConfigError


@pytest.fixture(scope="module")
def dup_root(busi_root, tmp_path_factory):
    """The session phantom plus an exact copy of one benign image (and its mask)."""
    root = clone(busi_root, tmp_path_factory.mktemp("dup") / "busi")
    shutil.copy(root / "benign" / "benign (3).png", root / "benign" / "benign (99).png")
    shutil.copy(root / "benign" / "benign (3)_mask.png", root / "benign" / "benign (99)_mask.png")
    return root


def test_deterministic_by_seed(busi_root):
    ds = open_dataset(busi_root)
    a, b, c = make_splits(ds, seed=0), make_splits(ds, seed=0), make_splits(ds, seed=1)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert (a.train, a.val, a.test) != (c.train, c.val, c.test)


def test_partition_and_stratified(busi_root):
    ds = open_dataset(busi_root)
    s = make_splits(ds, val=0.25, test=0.25, seed=3)
    assert sorted(s.train + s.val + s.test) == sorted(ds.ids)
    labels = dict(zip(ds.ids, ds.labels))
    n = ds.counts()
    for part in (s.val, s.test):
        got = Counter(labels[i] for i in part)
        assert all(got[k] == round(n[k] * 0.25) for k in n)


def test_duplicates_never_straddle(dup_root):
    ds = open_dataset(dup_root)
    groups = find_duplicates(ds)
    ids = {ds.ids[i] for g in groups for i in g}
    assert {"benign/benign (3).png", "benign/benign (99).png"} <= ids
    for seed in range(8):
        s = make_splits(ds, val=0.3, test=0.3, seed=seed)
        assert s.duplicates["n_groups"] >= 1 and s.duplicates["n_images"] >= 2
        where = {p for p in ("train", "val", "test") for i in getattr(s, p)
                 if i in ("benign/benign (3).png", "benign/benign (99).png")}
        assert len(where) == 1
        f = kfold(ds, 4, seed)
        assert sum(any(i in fold for i in ("benign/benign (3).png", "benign/benign (99).png"))
                   for fold in f.folds) == 1


def test_kfold_covers_each_sample_once(busi_root):
    ds = open_dataset(busi_root)
    f = kfold(ds, 4, seed=0)
    flat = [i for fold in f.folds for i in fold]
    assert sorted(flat) == sorted(ds.ids) and len(flat) == len(set(flat))
    train, val = f.fold(1)
    assert not set(train) & set(val) and len(train) + len(val) == len(ds)
    with pytest.raises(ConfigError):
        kfold(ds, 1)


def test_json_round_trip(busi_root, tmp_path):
    ds = open_dataset(busi_root)
    s = make_splits(ds, seed=2)
    s.save(tmp_path / "splits.json")
    back = Splits.load(tmp_path / "splits.json")
    assert back == s and back.select(ds, "test").ids == s.test
    assert [p.name for p in tmp_path.iterdir()] == ["splits.json"]  # no temporary left behind
    f = kfold(ds, 3, seed=2)
    f.save(tmp_path / "folds.json")
    assert KFold.load(tmp_path / "folds.json") == f
    with pytest.raises(ConfigError):
        make_splits(ds, val=0.6, test=0.5)
