"""Which files a batch of inputs (files and folders) stands for, and which files it owns.

* a file (or anything that is not a folder: a FIFO, a broken link, a folder named ``x.png``)
  is one input; whether it can be read is decided per input later, so one bad input never
  stops the others;
* a folder that is a data set (BUSI, Dataset B, folder layout) contributes its images as the
  data loaders find them (:func:`btseg.data.layouts.dataset_files`), never its masks;
* any other folder contributes its image, DICOM and video files, recursively (hidden files
  and folders skipped, symbolic links to folders not followed), except ground-truth masks
  (``<stem>_mask.png``, ``<stem>_mask_1.png`` next to ``<stem>.<ext>``) and the outputs of
  an earlier ``btseg-predict`` run (named by its ``<stem>.json`` records);
* a folder that contributes nothing is an error (:class:`DataError`, exit 2), not an empty run.

Every file seen (inputs, masks, label files of a data set) is *protected*: the output policy
(:mod:`btseg.cli.predict_outputs`) never writes over it.

Example::

    >>> batch = discover([Path("Dataset_BUSI_with_GT"), Path("extra.png")])   # doctest: +SKIP
    >>> [i.path.name for i in batch.items][:2], batch.datasets
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from btseg.errors import DataError
from btseg.imageio import MEDIA_SUFFIXES

_MASK = re.compile(r"^(?P<stem>.+?)_mask(?:_\d+)?$", re.IGNORECASE)
WRITER = "btseg-predict"  # the ``writer`` field of the JSON record btseg-predict writes per frame


@dataclass(frozen=True)
class InputItem:
    """One input file and the sub-folder of ``--out`` its outputs go to (relative)."""

    path: Path
    subdir: Path = Path(".")


@dataclass
class InputSet:
    """The inputs of one run, the files they own (never written over) and data set roots."""

    items: list[InputItem] = field(default_factory=list)
    protected: set[Path] = field(default_factory=set)
    datasets: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _real(p: Path) -> Path:
    return Path(os.path.realpath(p))


def discover(inputs: Sequence[str | os.PathLike]) -> InputSet:
    """Expand files and folders into inputs (see the module docstring); DataError for a
    folder without any image, DICOM or video file."""
    out = InputSet()
    seen: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir() and p.suffix.lower() not in MEDIA_SUFFIXES:
            items = _folder(p, out)
            if not items:
                raise DataError(f"{p}: no image, DICOM or video file found (searched recursively for "
                                f"{', '.join(MEDIA_SUFFIXES)}; masks and earlier btseg-predict outputs excluded)")
        else:
            items = [InputItem(p)]
            if p.exists():
                out.protected.add(_real(p))
        for it in items:
            key = _real(it.path) if it.path.exists() else it.path.absolute()
            if key not in seen:  # the same file named twice (a.png and ./a.png, or a folder and a file in it)
                seen.add(key)
                out.items.append(it)
    return out


def _folder(root: Path, out: InputSet) -> list[InputItem]:
    from btseg.data.layouts import dataset_files, detect_layout

    try:
        layout = detect_layout(root)
    except DataError:
        layout = None
    if layout is not None:
        _, images, masks = dataset_files(root, layout)
        out.datasets.append(_real(root))
        out.protected |= {_real(f) for f in _walk(root)}  # images, masks, label files: all of it
        return [InputItem(f, f.parent.relative_to(root)) for f in images]
    files = [f for f in _walk(root) if f.suffix.lower() in MEDIA_SUFFIXES]
    owned = _btseg_outputs(root)  # not protected here: the output policy checks their recorded sha256
    out.protected |= {_real(f) for f in files} - owned
    stems = {(f.parent, f.stem) for f in files if not _MASK.match(f.stem)}
    items = []
    for f in files:
        m = _MASK.match(f.stem)
        why = ("an earlier btseg-predict output" if _real(f) in owned
               else f"a ground-truth mask of {m['stem']}" if m and (f.parent, m["stem"]) in stems else None)
        if why:
            out.skipped.append((f, why))
        else:
            items.append(InputItem(f, f.parent.relative_to(root)))
    return items


def _walk(root: Path) -> list[Path]:
    """Non-hidden entries that are not folders, under ``root``, sorted; links to folders not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / n for n in sorted(filenames) if not n.startswith(".")]
    return found


def _btseg_outputs(root: Path) -> set[Path]:
    """Files named by btseg-predict's JSON records anywhere under ``root``."""
    owned: set[Path] = set()
    for rec_path in (f for f in _walk(root) if f.suffix == ".json"):
        rec = read_record(rec_path)
        if rec is not None:
            owned |= {_real(rec_path.parent / name) for name in rec.get("files", {})}
    return owned


def read_record(path: Path) -> dict | None:
    """A btseg-predict JSON record, or None when ``path`` is anything else (never raises)."""
    from btseg.errors import ArtifactError
    from btseg.io import read_regular

    try:  # a regular file (no link, FIFO or /dev/zero), at most 1 MiB
        rec = json.loads(read_regular(path, 1 << 20, "output record"))
    except (ArtifactError, ValueError, RecursionError):
        return None
    if isinstance(rec, dict) and rec.get("writer") == WRITER and isinstance(rec.get("files"), dict):
        return rec
    return None
