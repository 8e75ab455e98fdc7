"""The lazy dataset every loader returns (opened by :func:`btseg.data.open_dataset`, in
:mod:`btseg.data.layouts`), and the file helpers the loaders build on.

Loaders (:mod:`btseg.data.busi`, :mod:`~btseg.data.datasetb`, :mod:`~btseg.data.folder`)
only *index*: they pair images with masks and labels and read image headers, so opening
780 BUSI images takes well under a second.  Pixels are decoded when a sample is indexed.
Every item is checked before anything is decided: without ``skip_bad`` one
:class:`~btseg.errors.DataError` names every bad item (file and reason, one per line);
with ``skip_bad=True`` they are dropped instead, one :class:`SkippedFilesWarning` names
each once, and :meth:`Dataset.describe` records them (so ``splits.json`` and
``model.json`` say what a model was trained without).  :func:`scan` returns them.

Example::

    >>> ds = open_dataset("Dataset_BUSI_with_GT", include_normal=False)   # doctest: +SKIP
    >>> len(ds), ds.describe()["counts"]                                 # doctest: +SKIP
    (647, {'benign': 437, 'malignant': 210, 'normal': 0})
    >>> s = ds[0]; s.image.shape, s.mask.dtype, s.label                 # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, Sequence, overload

import numpy as np

from btseg.data.problems import (NoUsableSamplesError, Problems, SkippedFilesWarning, blame,  # noqa: F401
                                  format_problems)
from btseg.data.sample import LABELS, Sample
from btseg.data.samplefiles import (SampleRef, check_ref, header_size, load_image, load_mask,  # noqa: F401
                                     load_sample, read_pixels)
from btseg.errors import DataError
from btseg.imageio import IMAGE_SUFFIXES

IMAGE_EXTS = IMAGE_SUFFIXES  # the one list, in btseg.imageio


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted naturally ('x (2)' before 'x (10)')."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
             and not p.name.startswith(".")]
    return sorted(files, key=natural_key)


def unique_by(files: Sequence[Path], key: Callable[[Path], str | None], problems: Problems,
              what: str) -> dict[str, Path]:
    """``key(file) -> file`` for files whose key is unique.  Files sharing a key (``a.png`` and
    ``a.jpg``; ``000001.png`` and ``1.png`` in Dataset B) would pair with the same mask or
    label silently: each of them is recorded as a problem naming the others, and none is kept."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        k = key(f)
        if k is not None:
            groups.setdefault(k, []).append(f)
    out = {}
    for k, fs in groups.items():
        if len(fs) == 1:
            out[k] = fs[0]
            continue
        for f in fs:
            others = ", ".join(o.name for o in fs if o is not f)
            problems.add(f, f"{what} key {k!r} is shared with {others}: ambiguous pairing; rename or remove one")
    return out


def natural_key(p: Path | str) -> list:
    """Sort key that orders embedded numbers numerically."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", Path(p).name)]


class Dataset(Sequence[Sample]):
    """An indexed dataset: ``len``, integer/slice indexing and iteration yield :class:`Sample`.

    Args:
        root: the dataset root the ids are relative to.
        layout: ``"busi"``, ``"datasetb"`` or ``"folder"``.
        refs: the indexed samples.
        cache: keep decoded samples in memory after first access.
        labels_inferred: True when labels were guessed (folder layout without labels.csv);
            class-aware consumers must call :meth:`require_labels`.
        skipped: ``(path, reason)`` of every item dropped with ``skip_bad``.
    """

    def __init__(self, root: Path, layout: str, refs: list[SampleRef], *, cache: bool = False,
                 labels_inferred: bool = False, skipped: list[tuple[str, str]] | None = None,
                 include_normal: bool = True) -> None:
        self.root = Path(root)
        self.layout = layout
        self.refs = list(refs)
        self.cache = cache
        self.labels_inferred = labels_inferred
        self.skipped = list(skipped or [])
        self.include_normal = include_normal
        self._cache: dict[int, Sample] = {}
        self._index = {r.rel: i for i, r in enumerate(self.refs)}

    def __len__(self) -> int:
        return len(self.refs)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> "Dataset": ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._with_refs(self.refs[i])
        i = range(len(self.refs))[i]  # IndexError and negative indices as a list does
        if i in self._cache:
            return self._cache[i]
        s = self.load(self.refs[i])
        if self.cache:
            self._cache[i] = s
        return s

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"Dataset(layout={self.layout!r}, root='{self.root}', n={len(self)})"

    @property
    def ids(self) -> list[str]:
        """Stable sample ids: image paths relative to :attr:`root` (POSIX)."""
        return [r.rel for r in self.refs]

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.refs]

    def counts(self) -> dict[str, int]:
        """Samples per class, every class present as a key."""
        c = Counter(self.labels)
        return {k: c.get(k, 0) for k in LABELS}

    def describe(self) -> dict:
        """What training records in model.json: layout, root, counts per class."""
        return {"layout": self.layout, "root": str(self.root), "n": len(self),
                "counts": self.counts(), "include_normal": self.include_normal,
                "labels": "inferred" if self.labels_inferred else "given",
                "skipped": self.skipped_records()}

    def skipped_records(self) -> list[dict[str, str]]:
        """The items dropped with ``skip_bad``: ``{"file", "reason"}``, files relative to the root."""
        out = []
        for p, r in self.skipped:
            try:
                p = Path(p).relative_to(self.root).as_posix()
            except ValueError:
                pass
            out.append({"file": str(p), "reason": r})
        return out

    def require_labels(self) -> None:
        """Raise DataError if labels were inferred; call this before class-aware training."""
        if self.labels_inferred:
            raise DataError(f"{self.root}: no labels.csv (columns image,label); labels were only "
                            "inferred from the masks, which class-aware training cannot use")

    def subset(self, ids: Sequence[str]) -> "Dataset":
        """The samples with these ids, in this order; DataError naming any unknown id."""
        missing = [k for k in ids if k not in self._index]
        if missing:
            raise DataError(f"{self.root}: {len(missing)} id(s) not in this dataset, e.g. {missing[0]!r}")
        return self._with_refs([self.refs[self._index[k]] for k in ids])

    def verify(self) -> None:
        """Decode every file now (catches truncated files the header check cannot see)."""
        for r in self.refs:
            self.load(r)

    def load(self, ref: SampleRef) -> Sample:
        """Decode one indexed sample; DataError naming the file on any problem."""
        return load_sample(ref)

    def _with_refs(self, refs: list[SampleRef]) -> "Dataset":
        return Dataset(self.root, self.layout, refs, cache=self.cache, labels_inferred=self.labels_inferred,
                       skipped=self.skipped, include_normal=self.include_normal)


def finish(root: Path, layout: str, refs: list[SampleRef], problems: Problems, *, skip_bad: bool,
           include_normal: bool, verify: bool, cache: bool, labels_inferred: bool = False) -> Dataset:
    """Shared tail of every loader: header checks, optional decode, problem report, empty check.

    Every item is checked before anything is decided, so the error (or the warning with
    ``skip_bad``) names every bad item, not the first one only."""
    good: list[SampleRef] = []
    decoded: dict[int, Sample] = {}
    for r in refs:
        try:
            check_ref(r)
            if verify:
                s = load_sample(r)
                if cache:
                    decoded[len(good)] = s
        except DataError as e:
            problems.add(*blame(r.image, r.masks, str(e)))
            continue
        good.append(r)
    if not [r for r in good if include_normal or r.label != "normal"]:
        raise NoUsableSamplesError(
            format_problems(f"{layout} {root}", problems.items, "and no usable sample"
                            + ("" if include_normal else " (normal images excluded)"))
            if problems.items else f"{root}: no usable samples in the {layout} layout"
            + ("" if include_normal else " (normal images excluded)"), list(problems.items))
    skipped = problems.resolve(skip_bad, f"{layout} {root}")
    if not include_normal:
        decoded = {}
        good = [r for r in good if r.label != "normal"]
    ds = Dataset(root, layout, good, cache=cache, labels_inferred=labels_inferred, skipped=skipped,
                 include_normal=include_normal)
    ds._cache.update(decoded)
    return ds
