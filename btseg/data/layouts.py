"""Which loader a data set directory needs, and opening it: the dispatch over the layouts.

Above the loaders (:mod:`btseg.data.busi`, :mod:`btseg.data.datasetb`,
:mod:`btseg.data.folder`), which build on :mod:`btseg.data.dataset`; kept out of
``dataset.py`` so that no loader and the module it builds on import each other.

Example::

    >>> ds = open_dataset("Dataset_BUSI_with_GT", include_normal=False)   # doctest: +SKIP
    >>> detect_layout(Path("Dataset_BUSI_with_GT"))                     # doctest: +SKIP
    'busi'
"""

from __future__ import annotations

import warnings
from pathlib import Path

from btseg.data import busi, datasetb, folder
from btseg.data.dataset import Dataset
from btseg.data.problems import NoUsableSamplesError, SkippedFilesWarning
from btseg.errors import DataError

LAYOUTS = ("busi", "datasetb", "folder")


def open_dataset(root: str | Path, layout: str = "auto", *, include_normal: bool = True,
                 skip_bad: bool = False, verify: bool = False, cache: bool = False) -> Dataset:
    """Index a dataset directory and return a lazy :class:`Dataset` of :class:`Sample`.

    Args:
        root: dataset directory (for BUSI, ``Dataset_BUSI_with_GT`` or its parent).
        layout: ``"auto"`` (detect), ``"busi"``, ``"datasetb"`` or ``"folder"``.
        include_normal: keep images labelled ``normal`` (empty masks).
        skip_bad: drop bad items with one :class:`SkippedFilesWarning` naming each (file and
            reason; also in :attr:`Dataset.skipped` and :meth:`Dataset.describe`), instead of
            raising one :class:`DataError` that names every bad item.
        verify: decode every image and mask now, so truncated files are among the bad items
            found at open; without it one is found only when that sample is accessed (header
            problems are always found at open).  Every command that reads a data set uses it.
        cache: keep decoded samples in memory.

    Raises:
        DataError: missing root, no layout matched, bad items (without ``skip_bad``), or no
            usable item at all (:class:`~btseg.data.problems.NoUsableSamplesError`).
    """
    loaders = {"busi": busi.load_busi, "datasetb": datasetb.load_datasetb, "folder": folder.load_folder}
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in loaders:
        raise DataError(f"layout {layout!r}: expected one of auto, {', '.join(LAYOUTS)}")
    return loaders[layout](root, include_normal=include_normal, skip_bad=skip_bad, verify=verify, cache=cache)


def dataset_files(root: str | Path, layout: str = "auto") -> tuple[str, list[Path], list[Path]]:
    """``(layout, images, masks)`` of a data set directory, found by its loader's own rules
    (no pairing, no decoding): what ``btseg-predict`` segments (images) and must never touch
    (masks).  DataError when no layout matches."""
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    mods = {"busi": busi, "datasetb": datasetb, "folder": folder}
    if layout not in mods:
        raise DataError(f"layout {layout!r}: expected one of auto, {', '.join(LAYOUTS)}")
    images, masks = mods[layout].list_files(root)
    return layout, images, masks


def detect_layout(root: Path) -> str:
    """Which layout ``root`` holds; DataError listing what was looked for when none matches."""
    for name, mod in (("busi", busi), ("datasetb", datasetb), ("folder", folder)):
        if mod.matches(root):
            return name
    raise DataError(f"{root}: no known dataset layout; looked for BUSI ({busi.LOOKED_FOR}), "
                    f"Dataset B ({datasetb.LOOKED_FOR}) and folder ({folder.LOOKED_FOR})")


def scan(root: str | Path, layout: str = "auto", *,
         include_normal: bool = True) -> tuple[Dataset | None, list[tuple[str, str]]]:
    """Every bad item of a data set and the data set of the good ones (None when none is usable).

    Decodes every file (``verify``) and never raises for bad items: what ``btseg-data
    inspect`` reports.  Raises DataError only when the root itself is unusable (missing, no
    known layout, an unreadable labels file).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFilesWarning)
        try:
            ds = open_dataset(root, layout, include_normal=include_normal, skip_bad=True, verify=True)
        except NoUsableSamplesError as e:
            if not e.problems:
                raise
            return None, e.problems
    return ds, ds.skipped
