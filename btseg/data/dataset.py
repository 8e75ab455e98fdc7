"""The lazy dataset every loader returns (opened by :func:`btseg.data.open_dataset`, in
:mod:`btseg.data.layouts`), and the file helpers the loaders build on.

Loaders (:mod:`btseg.data.busi`, :mod:`~btseg.data.datasetb`, :mod:`~btseg.data.folder`)
only *index*: they pair images with masks and labels and read image headers, so opening
780 BUSI images takes well under a second.  Pixels are decoded when a sample is indexed.
Every problem found is a :class:`~btseg.errors.DataError` naming the file; with
``skip_bad=True`` the bad items are dropped instead and one :class:`SkippedFilesWarning`
counts and names them (never silent).

Example::

    >>> ds = open_dataset("Dataset_BUSI_with_GT", include_normal=False)   # doctest: +SKIP
    >>> len(ds), ds.describe()["counts"]                                 # doctest: +SKIP
    (647, {'benign': 437, 'malignant': 210, 'normal': 0})
    >>> s = ds[0]; s.image.shape, s.mask.dtype, s.label                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence, overload

import numpy as np

from btseg.data.sample import LABELS, Sample
from btseg.preprocess import to_gray
from btseg.errors import DataError
from btseg.imageio import IMAGE_SUFFIXES, decode_image, image_size

log = logging.getLogger("btseg.data")

IMAGE_EXTS = IMAGE_SUFFIXES  # the one list, in btseg.imageio


class SkippedFilesWarning(UserWarning):
    """Issued once per :func:`open_dataset` call that skipped bad files (``skip_bad=True``)."""


@dataclass(frozen=True)
class SampleRef:
    """An indexed, not yet decoded sample: where its files are and what its label is."""

    image: Path
    masks: tuple[Path, ...]
    label: str
    rel: str  # image path relative to the dataset root, POSIX: the id used by splits


class Problems:
    """Collects indexing problems so that one run reports all of them, not the first only."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: Path | str, reason: str) -> None:
        self.items.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.items)

    def resolve(self, skip_bad: bool, what: str) -> list[tuple[str, str]]:
        """Raise one DataError (skip_bad False) or warn once naming every skipped file."""
        if not self.items:
            return []
        lines = [f"{p}: {r}" for p, r in self.items]
        if not skip_bad:
            more = f" (and {len(lines) - 1} more problem(s); skip_bad=True skips them)" if len(lines) > 1 else ""
            raise DataError(lines[0] + more)
        msg = f"{what}: skipped {len(lines)} bad item(s): " + "; ".join(lines[:20])
        if len(lines) > 20:
            msg += f"; ... {len(lines) - 20} more"
        log.warning(msg)
        warnings.warn(msg, SkippedFilesWarning, stacklevel=3)
        return list(self.items)


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


def header_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file header only (bounded, regular files only: see
    :mod:`btseg.imageio`); DataError if it is not a readable image."""
    return image_size(path)


def check_ref(ref: SampleRef) -> None:
    """Cheap index-time checks: every file readable as an image, masks as big as the image."""
    hw = header_size(ref.image)
    for m in ref.masks:
        mhw = header_size(m)
        if mhw != hw:
            raise DataError(f"{m}: mask size {mhw[1]}x{mhw[0]} differs from image "
                            f"{ref.image.name} size {hw[1]}x{hw[0]} (WxH)")


def read_pixels(path: Path) -> np.ndarray:
    """Decode any image file as stored (8/16-bit) -> gray or RGB(A) array, through the one
    bounded, truncation-checked reader :func:`btseg.imageio.decode_image`."""
    return decode_image(path)


def load_image(path: Path) -> np.ndarray:
    """Image file -> HxW uint8 gray. 16-bit maps its full range onto 8 bits (x / 257)."""
    g = to_gray(read_pixels(path))
    if g.dtype == np.uint16:
        g = np.round(g.astype(np.float32) / 257.0).astype(np.uint8)
    elif g.dtype != np.uint8:
        raise DataError(f"{path}: unsupported pixel type {g.dtype}; expected 8- or 16-bit")
    return g


def load_mask(path: Path) -> np.ndarray:
    """Mask file -> HxW bool.

    Binarisation: a pixel is foreground when any colour channel exceeds half the dtype's
    range (> 127 for 8-bit), which is robust to JPEG ringing and anti-aliased edges of
    0/255 masks; masks whose maximum is 1 (0/1 label maps) use > 0 instead.
    """
    a = read_pixels(path)
    if a.ndim == 3:
        a = a[..., :3].max(axis=2)  # RGB masks: white or a coloured outline both count
    if a.dtype == bool:
        return a
    if a.max() == 1:
        return a > 0
    half = 32767 if a.dtype == np.uint16 else 127
    return a > half


def load_sample(ref: SampleRef) -> Sample:
    """Decode one indexed sample, merging its masks with OR; DataError naming the bad file."""
    img = load_image(ref.image)
    mask = np.zeros(img.shape, bool)
    for m in ref.masks:
        mm = load_mask(m)
        if mm.shape != img.shape:
            raise DataError(f"{m}: mask size {mm.shape[1]}x{mm.shape[0]} differs from image "
                            f"{ref.image.name} size {img.shape[1]}x{img.shape[0]} (WxH)")
        mask |= mm
    return Sample(image=img, mask=mask, label=ref.label, path=ref.image, mask_paths=ref.masks)


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
                "skipped": len(self.skipped)}

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
    """Shared tail of every loader: header checks, optional decode, problem report, empty check."""
    good: list[SampleRef] = []
    for r in refs:
        try:
            check_ref(r)
            if verify:
                load_sample(r)
        except DataError as e:
            problems.add(r.image, str(e).replace(f"{r.image}: ", "", 1))
            continue
        good.append(r)
    skipped = problems.resolve(skip_bad, f"{layout} {root}")
    if not include_normal:
        good = [r for r in good if r.label != "normal"]
    if not good:
        raise DataError(f"{root}: no usable samples in the {layout} layout"
                        + ("" if include_normal else " (normal images excluded)")
                        + (f"; {len(skipped)} skipped" if skipped else ""))
    return Dataset(root, layout, good, cache=cache, labels_inferred=labels_inferred, skipped=skipped,
                   include_normal=include_normal)
