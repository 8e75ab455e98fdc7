"""Plain folder loader: ``images/``, ``masks/`` and an optional ``labels.csv``.

A mask pairs with ``images/<stem>.<ext>`` when it is named ``masks/<stem>.<ext>`` or
``masks/<stem>_mask.<ext>``; extra lesions ``<stem>_mask_1.<ext>``... are merged with OR.

Labels: ``labels.csv`` (columns ``image,label``; ``image`` is a file name or stem, ``label``
one of benign / malignant / normal).  Without it the folder still loads, for segmentation
only: each label is *inferred* from the mask (``normal`` when empty, else ``benign``), a
warning says so, and :meth:`Dataset.require_labels` raises for class-aware consumers
(per-class teachers) instead of letting them train on guessed classes.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

from btseg.data.dataset import Dataset, Problems, SampleRef, finish, image_files, load_mask, unique_by
from btseg.data.sample import LABELS
from btseg.errors import DataError

LOOKED_FOR = "images/ and masks/ folders (optional labels.csv with columns image,label)"
_MASK = re.compile(r"^(?P<stem>.+?)(?:_mask(?:_(?P<k>\d+))?)?$", re.IGNORECASE)


class InferredLabelsWarning(UserWarning):
    """The folder has no labels.csv; labels were inferred from the masks."""


def matches(root: Path) -> bool:
    """True when ``root`` looks like the folder layout (used by layout auto-detection)."""
    return (Path(root) / "images").is_dir() and (Path(root) / "masks").is_dir()


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(images in images/, masks in masks/), by name only."""
    root = Path(root)
    return image_files(root / "images"), image_files(root / "masks")


def read_labels_csv(path: Path, problems: Problems) -> dict[str, str]:
    """Image stem -> label from ``labels.csv``; unknown labels are problems naming the row."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read ({e})") from e
    if rows and not {"image", "label"} <= {k.strip().lower() for k in rows[0] if k}:
        raise DataError(f"{path}: expected columns image,label; found {', '.join(rows[0])}")
    labels = {}
    for n, row in enumerate(rows, start=2):
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        label = row["label"].lower()
        if label not in LABELS:
            problems.add(path, f"row {n}: image {row['image']!r} has unknown label {row['label']!r}; "
                               f"expected one of {', '.join(LABELS)}")
        elif row["image"]:
            labels[Path(row["image"]).stem] = label
    return labels


def load_folder(root: str | Path, *, include_normal: bool = True, skip_bad: bool = False,
                verify: bool = False, cache: bool = False) -> Dataset:
    """Index an ``images/`` + ``masks/`` folder. See :func:`btseg.data.open_dataset`."""
    root = Path(root)
    if not matches(root):
        raise DataError(f"{root}: not a folder dataset; looked for {LOOKED_FOR}")
    problems = Problems()
    masks: dict[str, list[tuple[int, Path]]] = {}
    for p in unique_by(image_files(root / "masks"), _mask_key, problems, "mask").values():
        m = _MASK.match(p.stem)
        masks.setdefault(m["stem"], []).append((int(m["k"]) + 1 if m["k"] else 0, p))
    labels_csv = root / "labels.csv"
    labels = read_labels_csv(labels_csv, problems) if labels_csv.is_file() else None
    refs = []
    for img in unique_by(image_files(root / "images"), lambda p: p.stem, problems, "image").values():
        ms = tuple(p for _, p in sorted(masks.get(img.stem, [])))
        if not ms:
            problems.add(img, f"mask masks/{img.stem}.png or masks/{img.stem}_mask.png is missing")
            continue
        if labels is None:
            label = _infer_label(ms, problems)
            if label is None:
                continue
        elif img.stem not in labels:
            problems.add(img, "no row in labels.csv")
            continue
        else:
            label = labels[img.stem]
        refs.append(SampleRef(img, ms, label, img.relative_to(root).as_posix()))
    if labels is None:
        warnings.warn(f"{root}: no labels.csv; labels inferred from the masks (empty -> normal, "
                      "else benign): fine for segmentation, not for class-aware training",
                      InferredLabelsWarning, stacklevel=3)
    return finish(root, "folder", refs, problems, skip_bad=skip_bad, include_normal=include_normal,
                  verify=verify, cache=cache, labels_inferred=labels is None)


def _mask_key(p: Path) -> str:
    """``a.png``, ``a_mask.png`` and ``a_mask.jpg`` are all 'the first mask of a': one key."""
    m = _MASK.match(p.stem)
    return f"{m['stem']}_mask_{int(m['k']) + 1 if m['k'] else 0}"


def _infer_label(masks: tuple[Path, ...], problems: Problems) -> str | None:
    """'normal' when every mask is empty, else 'benign'; None (problem recorded) if unreadable."""
    try:
        return "benign" if any(load_mask(m).any() for m in masks) else "normal"
    except DataError as e:
        problems.add(masks[0], str(e).replace(f"{masks[0]}: ", "", 1))
        return None
