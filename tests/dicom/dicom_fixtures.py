"""Helpers for the DICOM out / DICOM node tests: ultrasound DICOM made from the bundled phantom
samples (a tissue region inside a larger screen, so regions are pasted back), and the real
Debian tools (dcmtk, dicom3tools), installed when missing and we are root, else skipped with
the command that installs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from dicom_util import write_dicom  # noqa: E402

from btseg import defaults  # noqa: E402

TOOLS = {"dciodvfy": "dicom3tools", "storescu": "dcmtk", "echoscu": "dcmtk", "storescp": "dcmtk"}
REGION_DELTA_CM = 0.008  # 0.08 mm per pixel


def need(tool: str) -> str:
    """Path of a Debian tool; installs its package as root, else skips naming the command."""
    found = shutil.which(tool)
    if found:
        return found
    pkg = TOOLS[tool]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", pkg], capture_output=True, timeout=900)
        found = shutil.which(tool)
        if found:
            return found
    pytest.skip(f"{tool} is not installed: apt-get install -y {pkg}")


def sample(name: str = "malignant (1).png") -> np.ndarray:
    path = next(p for p in defaults.sample_images() if p.name == name)
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def screen(img: np.ndarray) -> tuple[np.ndarray, dict]:
    """The B-mode image on a darker screen with a text bar; its tissue region item."""
    h, w = img.shape
    canvas = np.full((h + 40, w + 30), 12, np.uint8)
    canvas[30:30 + h, 20:20 + w] = img
    cv2.putText(canvas, "BTSEG 7.5MHz", (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    region = dict(RegionSpatialFormat=1, RegionDataType=1, PhysicalUnitsXDirection=3, PhysicalUnitsYDirection=3,
                  PhysicalDeltaX=REGION_DELTA_CM, PhysicalDeltaY=REGION_DELTA_CM, RegionLocationMinX0=20,
                  RegionLocationMinY0=30, RegionLocationMaxX1=20 + w - 1, RegionLocationMaxY1=30 + h - 1)
    return canvas, region


def us_file(path: Path, name: str = "malignant (1).png") -> Path:
    """A single-frame US image with a tissue region (spacing from the region)."""
    canvas, region = screen(sample(name))
    return write_dicom(path, canvas, pixel_spacing=None, regions=[region])


def cine_file(path: Path) -> Path:
    """A two-frame US cine of two samples (same size) with a tissue region."""
    a = sample("malignant (1).png")
    b = cv2.resize(sample("benign (23).png"), a.shape[::-1])
    (fa, region), (fb, _) = screen(a), screen(b)
    return write_dicom(path, np.stack([fa, fb]), pixel_spacing=None, regions=[region])


def ct_file(path: Path) -> Path:
    return write_dicom(path, sample()[:64, :64].copy(), modality="CT")
