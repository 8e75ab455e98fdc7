"""The sample every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LABELS = ("benign", "malignant", "normal")


@dataclass
class Sample:
    """One image with its merged mask.

    Attributes:
        image: HxW uint8 grayscale image.
        mask: HxW bool, every lesion mask of the image merged with OR.
        label: ``"benign"``, ``"malignant"`` or ``"normal"``.
        path: the image file.
        mask_paths: the mask file(s) merged into ``mask``.
        spacing_mm: pixel spacing (row, col) in mm when known, else None.
    """

    image: np.ndarray
    mask: np.ndarray
    label: str
    path: Path
    mask_paths: tuple[Path, ...] = field(default_factory=tuple)
    spacing_mm: tuple[float, float] | None = None

    @property
    def id(self) -> str:
        """A stable identifier: ``label/file name``."""
        return f"{self.label}/{Path(self.path).name}"
