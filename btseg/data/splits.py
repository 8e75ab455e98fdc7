"""Deterministic, class-stratified splits that keep near-duplicate images together.

BUSI is known to contain duplicated images; a duplicate on both sides of a split leaks the
test set into training.  :func:`find_duplicates` groups images whose perceptual hashes
(``imagehash.phash``, 64 bits) differ in at most ``threshold`` bits (union-find, so chains
join), and every split assigns whole groups.  Groups are stratified by their majority label.

Example::

    >>> s = make_splits(ds, val=0.15, test=0.15, seed=0)            # doctest: +SKIP
    >>> s.save("splits.json"); Splits.load("splits.json").select(ds, "test")
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Sequence

import numpy as np

from btseg.data.dataset import Dataset
from btseg.errors import ConfigError, DataError
from btseg.io import read_json, write_json

DUP_THRESHOLD = 4  # bits of 64; see docs/data.md for why this is conservative
SPLITS_FILE = "splits.json"  # a training run's split, in its output directory (next to the packages)


def splits_path(run_dir: str | Path) -> Path:
    """Where a training run in ``run_dir`` writes (and reads) its split."""
    return Path(run_dir) / SPLITS_FILE


def find_splits(packages: Iterable[str | Path]) -> Path | None:
    """The run's split for these packages: ``splits.json`` in a package directory or its
    parent (the run directory), the first found; None when there is none."""
    for pkg in packages:
        for d in (Path(pkg), Path(pkg).parent):
            if splits_path(d).is_file():
                return splits_path(d)
    return None


def phash64(image: np.ndarray) -> np.uint64:
    """64-bit perceptual hash (``imagehash.phash``) of one gray image, as an integer."""
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(image)).hash.ravel()
    return np.packbits(bits).view(">u8")[0].astype(np.uint64)


def phashes(dataset: Dataset) -> np.ndarray:
    """:func:`phash64` of every image (decodes each image once)."""
    return np.array([phash64(s.image) for s in dataset], dtype=np.uint64).reshape(-1)


def find_duplicates(dataset: Dataset, threshold: int = DUP_THRESHOLD,
                    hashes: np.ndarray | None = None) -> list[list[int]]:
    """Groups (lists of indices, size >= 2) of near-duplicate images, by Hamming distance."""
    h = phashes(dataset) if hashes is None else hashes
    parent = list(range(len(h)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(h) - 1):  # one vectorised row per image: O(n^2) bits, fine for 10^4
        close = np.nonzero(np.bitwise_count(h[i] ^ h[i + 1:]) <= threshold)[0] + i + 1
        for j in close:
            parent[find(int(j))] = find(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(h)):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _groups(dataset: Dataset, threshold: int) -> tuple[list[list[int]], list[list[int]]]:
    """All groups (singletons included) and the duplicate groups alone."""
    dups = find_duplicates(dataset, threshold) if threshold >= 0 else []
    grouped = {i for g in dups for i in g}
    return dups + [[i] for i in range(len(dataset)) if i not in grouped], dups


def _by_label(dataset: Dataset, groups: list[list[int]], seed: int) -> dict[str, list[list[int]]]:
    """Groups per majority label, each list shuffled by ``seed`` (sorted first: order-free)."""
    labels = dataset.labels
    out: dict[str, list[list[int]]] = {}
    for g in sorted(groups, key=lambda g: dataset.ids[g[0]]):
        lab = Counter(labels[i] for i in g).most_common(1)[0][0]
        out.setdefault(lab, []).append(g)
    rng = np.random.default_rng(seed)
    for lab in sorted(out):
        perm = rng.permutation(len(out[lab]))
        out[lab] = [out[lab][k] for k in perm]
    return out


def _dup_report(dataset: Dataset, dups: list[list[int]], threshold: int) -> dict:
    ids = dataset.ids
    return {"threshold": threshold, "n_groups": len(dups), "n_images": sum(map(len, dups)),
            "groups": [[ids[i] for i in g] for g in dups]}


class _JsonFile:
    """save/load for the split dataclasses; ``KIND`` guards against loading the wrong file."""

    KIND = ""
    DESCRIPTION = ""

    def save(self, path: str | Path) -> None:
        """Write as JSON atomically."""
        write_json(path, asdict(self))  # type: ignore[call-overload]

    @classmethod
    def load(cls, path: str | Path):  # type: ignore[no-untyped-def]
        d = read_json(path)
        if d.get("kind") != cls.KIND:
            raise DataError(f"{path}: not a {cls.DESCRIPTION} file (kind={d.get('kind')!r})")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})  # type: ignore[attr-defined]


@dataclass
class Splits(_JsonFile):
    """A train/val/test split: lists of sample ids (image paths relative to the root)."""

    train: list[str]
    val: list[str]
    test: list[str]
    seed: int
    fractions: dict[str, float]
    duplicates: dict
    dataset: dict = field(default_factory=dict)
    kind: str = "holdout"
    KIND: ClassVar[str] = "holdout"
    DESCRIPTION: ClassVar[str] = "train/val/test split"

    def select(self, dataset: Dataset, part: str) -> Dataset:
        """The ``train``, ``val`` or ``test`` part of ``dataset``."""
        if part not in ("train", "val", "test"):
            raise ConfigError(f"part {part!r}: expected train, val or test")
        return dataset.subset(getattr(self, part))



@dataclass
class KFold(_JsonFile):
    """k disjoint folds of sample ids covering the dataset once; fold i is validation."""

    folds: list[list[str]]
    seed: int
    duplicates: dict
    dataset: dict = field(default_factory=dict)
    kind: str = "kfold"
    KIND: ClassVar[str] = "kfold"
    DESCRIPTION: ClassVar[str] = "k-fold"

    def fold(self, i: int) -> tuple[list[str], list[str]]:
        """(train ids, validation ids) for fold ``i``."""
        if not 0 <= i < len(self.folds):
            raise ConfigError(f"fold {i}: expected 0..{len(self.folds) - 1}")
        return [x for j, f in enumerate(self.folds) if j != i for x in f], list(self.folds[i])



def make_splits(dataset: Dataset, val: float = 0.15, test: float = 0.15, seed: int = 0,
                dup_threshold: int = DUP_THRESHOLD) -> Splits:
    """Stratified train/val/test split of whole near-duplicate groups, deterministic by seed.

    Per class, groups are shuffled by ``seed`` and fill ``test`` then ``val`` up to
    ``round(n_class * fraction)`` images (at least one when the class has three or more and
    the fraction is not 0, so a small class is never missing from val or test); the rest train.  ``dup_threshold < 0`` disables
    duplicate detection (and the decoding of every image it needs).
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"val={val}, test={test}: expected fractions in [0, 1) summing below 1")
    groups, dups = _groups(dataset, dup_threshold)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for lab, gs in _by_label(dataset, groups, seed).items():
        n = sum(map(len, gs))
        target = {p: max(1 if n >= 3 and f > 0 else 0, round(n * f)) for p, f in (("test", test), ("val", val))}
        for g in gs:
            dest = next((p for p in ("test", "val") if len(g) <= target[p]), "train")
            if dest != "train":
                target[dest] -= len(g)
            parts[dest] += g
    ids = dataset.ids
    return Splits(*([ids[i] for i in sorted(parts[p])] for p in ("train", "val", "test")), seed=seed,
                  fractions={"val": val, "test": test}, duplicates=_dup_report(dataset, dups, dup_threshold),
                  dataset=dataset.describe())


def kfold(dataset: Dataset, k: int = 5, seed: int = 0, dup_threshold: int = DUP_THRESHOLD) -> KFold:
    """k stratified folds of whole near-duplicate groups; every sample in exactly one fold."""
    if not 2 <= k <= len(dataset):
        raise ConfigError(f"k={k}: expected 2..{len(dataset)} (the number of samples)")
    groups, dups = _groups(dataset, dup_threshold)
    folds: list[list[int]] = [[] for _ in range(k)]
    for lab, gs in _by_label(dataset, groups, seed).items():
        sizes = [0] * k  # per-class fill, so each fold gets its share of every class
        for g in sorted(gs, key=len, reverse=True):  # stable: shuffled order among equal sizes
            j = min(range(k), key=lambda f: (sizes[f], len(folds[f])))
            sizes[j] += len(g)
            folds[j] += g
    ids = dataset.ids
    return KFold([[ids[i] for i in sorted(f)] for f in folds], seed=seed,
                 duplicates=_dup_report(dataset, dups, dup_threshold), dataset=dataset.describe())


def check_disjoint(parts: Sequence[Sequence[str]]) -> None:
    """Raise DataError if any id appears in two parts (a guard for hand-edited split files)."""
    seen: dict[str, int] = {}
    for j, p in enumerate(parts):
        for x in p:
            if seen.setdefault(x, j) != j:
                raise DataError(f"id {x!r} appears in two splits")
