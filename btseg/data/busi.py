"""BUSI loader (Al-Dhabyani et al. 2020): ``Dataset_BUSI_with_GT/{benign,malignant,normal}/``.

Each class folder holds ``<class> (k).png`` images, their ``<class> (k)_mask.png`` and, for
images with several lesions, ``<class> (k)_mask_1.png``, ``_mask_2.png``...; the masks of one
image are merged with OR.  The label is the class folder's name.
"""

from __future__ import annotations

import re
from pathlib import Path

from btseg.data.dataset import Dataset, Problems, SampleRef, finish, image_files, unique_by
from btseg.data.sample import LABELS

DIRNAME = "Dataset_BUSI_with_GT"
LOOKED_FOR = f"benign/, malignant/ or normal/ with '<name>_mask.png' files, directly or under {DIRNAME}/"
# "benign (1)_mask.png" -> stem "benign (1)", extra index None; "_mask_2.png" -> index 2
_MASK = re.compile(r"^(?P<stem>.+?)_mask(?:_(?P<k>\d+))?$", re.IGNORECASE)


def resolve_root(root: Path) -> Path | None:
    """The directory holding the class folders: ``root`` itself or ``root/Dataset_BUSI_with_GT``."""
    for cand in (root, root / DIRNAME):
        if cand.is_dir() and any((cand / c).is_dir() for c in ("benign", "malignant")):
            return cand
    return None


def matches(root: Path) -> bool:
    """True when ``root`` looks like BUSI (used by layout auto-detection)."""
    return resolve_root(Path(root)) is not None


def list_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(images, masks) of every class folder, by name only (no pairing, no decoding)."""
    base = resolve_root(Path(root))
    if base is None:
        return [], []
    images, masks = [], []
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for p in image_files(sub):
            (masks if _MASK.match(p.stem) else images).append(p)
    return images, masks


def index_class(folder: Path, label: str, problems: Problems, base: Path) -> list[SampleRef]:
    """Pair images with their masks in one class folder; record orphans and missing masks."""
    files = image_files(folder)
    # a.png + a.jpg (or a_mask.png + a_mask.jpg) would pair silently with one mask: refused
    images = unique_by([p for p in files if not _MASK.match(p.stem)], lambda p: p.stem, problems, "image")
    masks: dict[str, list[tuple[int, Path]]] = {}
    for p in unique_by([p for p in files if _MASK.match(p.stem)], _mask_key, problems, "mask").values():
        m = _MASK.match(p.stem)
        masks.setdefault(m["stem"], []).append((int(m["k"]) if m["k"] else 0, p))
    refs = []
    for stem, img in images.items():
        ms = sorted(masks.pop(stem, []))
        if not ms:
            problems.add(img, f"mask '{stem}_mask.png' is missing")
            continue
        refs.append(SampleRef(img, tuple(p for _, p in ms), label, img.relative_to(base).as_posix()))
    for stem, ms in masks.items():
        for _, p in ms:
            problems.add(p, f"mask without an image (expected '{stem}.png')")
    return refs


def _mask_key(p: Path) -> str:
    m = _MASK.match(p.stem)
    return f"{m['stem']}_mask_{int(m['k']) if m['k'] else 0}"


def load_busi(root: str | Path, *, include_normal: bool = True, skip_bad: bool = False,
              verify: bool = False, cache: bool = False) -> Dataset:
    """Index a BUSI directory (``Dataset_BUSI_with_GT`` or its parent). See :func:`open_dataset`."""
    from btseg.errors import DataError

    given = Path(root)
    base = resolve_root(given)
    if base is None:
        raise DataError(f"{given}: not a BUSI directory; looked for {LOOKED_FOR}")
    problems = Problems()
    refs: list[SampleRef] = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = sub.name.lower()
        if label not in LABELS:
            if image_files(sub):
                problems.add(sub, f"unknown class folder {sub.name!r}; expected one of {', '.join(LABELS)}")
            continue
        if label == "normal" and not include_normal:
            continue  # not indexed at all: a broken normal/ folder cannot fail a lesion-only run
        refs += index_class(sub, label, problems, base)
    return finish(base, "busi", refs, problems, skip_bad=skip_bad, include_normal=include_normal,
                  verify=verify, cache=cache)
