"""One sample's files: where they are (:class:`SampleRef`), header checks, decoding, and how a
mask is binarised."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from btseg.data.sample import Sample
from btseg.errors import DataError
from btseg.imageio import decode_image, image_size
from btseg.preprocess import to_gray


@dataclass(frozen=True)
class SampleRef:
    """An indexed, not yet decoded sample: where its files are and what its label is."""

    image: Path
    masks: tuple[Path, ...]
    label: str
    rel: str  # image path relative to the dataset root, POSIX: the id used by splits


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
    0/255 masks; masks whose maximum is 1 (0/1 label maps, 1-bit PNGs read as 0/1) use > 0
    instead.  RGBA masks: foreground where the colour *and* the alpha pass that test (a
    white layer with the mask in its alpha, as some annotation tools save it).
    """
    a = read_pixels(path)
    if a.dtype == bool:
        return a
    if a.ndim == 3 and a.shape[2] == 4:
        # RGBA: a pixel counts when it is both bright and opaque, so a white layer whose
        # alpha holds the mask reads as its alpha, and an opaque mask as its colour
        return _binarise(a[..., :3].max(axis=2), path) & _binarise(a[..., 3], path)
    if a.ndim == 3:
        a = a[..., :3].max(axis=2)  # RGB masks: white or a coloured outline both count
    return _binarise(a, path)


def _binarise(a: np.ndarray, path: Path) -> np.ndarray:
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
