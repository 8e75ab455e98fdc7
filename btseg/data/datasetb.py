"""Dataset B loader (UDIAT, Yap et al. 2017): ``original/``, ``GT/`` and ``DatasetB.xlsx``.

Images ``original/000001.png`` pair with masks ``GT/000001.png`` by stem.  Labels come from
``DatasetB.xlsx`` (read with openpyxl) or a CSV with the same columns: ``Image`` (stored as
the number 1, the text "000001" or a file name) and ``Type`` (Benign / Malignant, any case).
Class sizes are counted from the label file, never assumed.
"""

from __future__ import annotations

import csv
from pathlib import Path

from btseg.data.dataset import Dataset, Problems, SampleRef, finish, image_files, natural_key, unique_by
from btseg.errors import DataError

LOOKED_FOR = "original/ and GT/ folders with DatasetB.xlsx or a .csv (columns Image, Type)"
_TYPES = {"benign": "benign", "malignant": "malignant", "normal": "normal"}


def matches(root: Path) -> bool:
    """True when ``root`` looks like Dataset B (used by layout auto-detection)."""
    return (Path(root) / "original").is_dir() and (Path(root) / "GT").is_dir()


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(images in original/, masks in GT/), by name only."""
    root = Path(root)
    return image_files(root / "original"), image_files(root / "GT")


def image_key(value: object) -> str | None:
    """Normalise an ``Image`` cell: 1, 1.0, "1", "000001" and "000001.png" all -> "1"."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = Path(str(value).strip()).stem
    if not text:
        return None
    return str(int(text)) if text.isdigit() else text.lower()


def find_label_file(root: Path) -> Path:
    """``DatasetB.xlsx`` if present, else the only .xlsx or .csv in ``root``."""
    if (root / "DatasetB.xlsx").is_file():
        return root / "DatasetB.xlsx"
    cands = sorted(p for p in root.iterdir() if p.suffix.lower() in (".xlsx", ".csv") and p.is_file()
                   and not p.name.startswith((".", "~$")))
    if len(cands) != 1:
        found = ", ".join(p.name for p in cands) or "none"
        raise DataError(f"{root}: expected DatasetB.xlsx or exactly one .xlsx/.csv label file "
                        f"(columns Image, Type); found {found}")
    return cands[0]


def read_rows(path: Path) -> list[tuple[int, object, object]]:
    """(row number, Image, Type) for every non-empty row under the header."""
    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        else:
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                rows = [list(r) for r in wb.worksheets[0].iter_rows(values_only=True)]
            finally:
                wb.close()
    except Exception as e:  # openpyxl raises many types for a broken file; all mean the same
        raise DataError(f"{path}: cannot read label file ({e.__class__.__name__}: {e})") from e
    for h, row in enumerate(rows):  # the header need not be the first row
        names = [str(c).strip().lower() if c is not None else "" for c in row]
        if "image" in names and "type" in names:
            i, t = names.index("image"), names.index("type")
            return [(h + k + 2, r[i] if i < len(r) else None, r[t] if t < len(r) else None)
                    for k, r in enumerate(rows[h + 1:]) if any(c not in (None, "") for c in r)]
    raise DataError(f"{path}: no header row with columns 'Image' and 'Type'")


def read_labels(path: Path, problems: Problems) -> dict[str, str]:
    """Image key -> label; unknown types and duplicate rows are problems naming the row."""
    labels: dict[str, str] = {}
    for row, img, typ in read_rows(path):
        key = image_key(img)
        label = _TYPES.get(str(typ).strip().lower()) if typ is not None else None
        if key is None:
            problems.add(path, f"row {row}: empty Image cell")
        elif label is None:
            problems.add(path, f"row {row}: image {img!r} has unknown Type {typ!r}; expected Benign or Malignant")
        elif key in labels and labels[key] != label:
            problems.add(path, f"row {row}: image {img!r} listed twice with different types")
        else:
            labels[key] = label
    return labels


def load_datasetb(root: str | Path, *, include_normal: bool = True, skip_bad: bool = False,
                  verify: bool = False, cache: bool = False) -> Dataset:
    """Index a Dataset B directory. See :func:`btseg.data.open_dataset`."""
    root = Path(root)
    if not matches(root):
        raise DataError(f"{root}: not a Dataset B directory; looked for {LOOKED_FOR}")
    problems = Problems()
    label_file = find_label_file(root)
    labels = read_labels(label_file, problems)
    gt = image_files(root / "GT")
    masks = unique_by(gt, lambda p: image_key(p.name), problems, "mask")
    ambiguous = {image_key(p.name) for p in gt} - set(masks)  # already reported on the masks
    images = image_files(root / "original")
    unique = unique_by(images, lambda p: image_key(p.name), problems, "image")
    refs, seen = [], {image_key(p.name) for p in images}
    for key, img in sorted(unique.items(), key=lambda kv: natural_key(kv[1])):
        if key not in labels:
            problems.add(img, f"no label row in {label_file.name}")
        elif key in ambiguous:
            problems.add(img, f"its mask in GT/ is ambiguous (several files with key {key!r})")
        elif key not in masks:
            problems.add(img, f"mask GT/{img.name} is missing")
        else:
            refs.append(SampleRef(img, (masks[key],), labels[key], img.relative_to(root).as_posix()))
    for key in sorted(set(labels) - seen):
        problems.add(label_file, f"image {key!r} is listed but not in original/")
    return finish(root, "datasetb", refs, problems, skip_bad=skip_bad, include_normal=include_normal,
                  verify=verify, cache=cache)
