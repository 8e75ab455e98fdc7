"""What a DICOM header says about its pixels: modality, vendor, ultrasound regions.

* **Modality.** btseg segments breast ultrasound.  A file whose ``Modality`` is not ``US``
  is refused (:class:`btseg.errors.ModalityError`) unless its modality is allowed
  explicitly (``allow_modalities=["CT"]``, ``["*"]`` for any; CLI ``--allow-modality CT``,
  ``--any-modality``).  A secondary capture (``OT``, ``SC`` or no modality) counts as
  ultrasound only when it carries ultrasound attributes: ``SequenceOfUltrasoundRegions``
  or an ultrasound SOP class.
* **Regions.** Each item of ``SequenceOfUltrasoundRegions`` is either used (a 2-D tissue
  region: ``RegionSpatialFormat`` 1, ``RegionDataType`` 1 when present, physical units cm
  (3) in both directions, positive deltas, at least 16x16 px inside the image) or skipped
  with the reason.  A region that reaches past the image is clipped to it and says so
  (scanners write inclusive max coordinates; exports crop images without fixing the header).

Example::

    >>> info = read_dicom_info("capture.dcm")       # doctest: +SKIP
    >>> info.modality, [r.box for r in info.regions], info.skipped   # doctest: +SKIP
    ('US', [(120, 60, 680, 290)], [{'index': 1, 'reason': 'spatial format 4 (spectral), not 2-D'}])
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection

from btseg.errors import DataError, ModalityError
from btseg.runtime.postprocess import SPACING_RANGE_MM
from btseg.runtime.regions import MIN_SIDE, Region, intersect

US_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.6.1": "US Image", "1.2.840.10008.5.1.4.1.1.3.1": "US Multi-frame",
                  "1.2.840.10008.5.1.4.1.1.6": "US Image (retired)",
                  "1.2.840.10008.5.1.4.1.1.3": "US Multi-frame (retired)"}
CAPTURE_MODALITIES = ("OT", "SC", "")
MODALITY_NAMES = {"CT": "computed tomography", "MR": "magnetic resonance", "CR": "computed radiography",
                  "DX": "digital radiography", "MG": "mammography", "PT": "PET", "NM": "nuclear medicine",
                  "XA": "X-ray angiography", "RF": "radio fluoroscopy", "OT": "other / secondary capture",
                  "SC": "secondary capture", "": "no modality"}
UNITS = {0: "none", 1: "percent", 2: "dB", 3: "cm", 4: "seconds", 5: "hertz", 6: "dB/seconds", 7: "cm/sec",
         8: "cm2", 9: "cm2/sec", 10: "cm3", 11: "cm3/sec", 12: "degrees"}
SPATIAL = {0: "none or not applicable", 1: "2D", 2: "M-mode", 3: "spectral", 4: "waveform", 5: "graphics"}
DATA_TYPES = {1: "tissue", 2: "color flow", 3: "PW spectral Doppler", 4: "CW spectral Doppler",
              5: "Doppler mean trace", 6: "Doppler mode trace", 7: "Doppler max trace", 8: "volume trace",
              10: "ECG trace", 11: "pulse trace", 12: "phonocardiogram trace", 13: "gray bar", 14: "color bar",
              15: "integrated backscatter", 16: "area trace", 17: "d(area)/dt", 18: "other physiological input"}


@dataclass
class DicomInfo:
    """Header facts kept with each frame (``Frame.dicom``) and written to the JSON record."""

    modality: str
    manufacturer: str | None
    model: str | None
    photometric: str | None
    sop_class: str | None
    has_regions: bool = False
    regions: list[Region] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    allowed_by: str = "ultrasound"
    pixels: dict[str, Any] | None = None  # how stored values were mapped (btseg.runtime.dicom_pixels)

    def record(self) -> dict[str, Any]:
        """JSON-able: modality, manufacturer, photometric interpretation, regions seen."""
        return {"modality": self.modality, "manufacturer": self.manufacturer, "model": self.model,
                "photometric_interpretation": self.photometric, "sop_class": self.sop_class,
                "accepted_as": self.allowed_by, "ultrasound_regions": len(self.regions) + len(self.skipped)
                if self.has_regions else 0, "pixels": self.pixels}


def _text(ds: Any, key: str) -> str | None:
    v = getattr(ds, key, None)
    return str(v).strip() if v not in (None, "") else None


def is_ultrasound(ds: Any) -> bool:
    """Modality US, or a secondary capture carrying ultrasound attributes."""
    modality = (_text(ds, "Modality") or "").upper()
    if modality == "US":
        return True
    return modality in CAPTURE_MODALITIES and ("SequenceOfUltrasoundRegions" in ds
                                               or str(getattr(ds, "SOPClassUID", "")) in US_SOP_CLASSES)


def check_modality(ds: Any, source: str, allow: Collection[str] | None = None) -> str:
    """'ultrasound' or 'allowed <M>' when ``ds`` may be segmented; else ModalityError."""
    if is_ultrasound(ds):
        return "ultrasound"
    allow = {a.upper() for a in (allow or ())}
    modality = (_text(ds, "Modality") or "").upper()
    if "*" in allow or (modality and modality in allow):
        return f"allowed {modality or 'none'}"
    name = MODALITY_NAMES.get(modality, "not ultrasound")
    extra = ""
    if modality in CAPTURE_MODALITIES:
        sop = str(getattr(ds, "SOPClassUID", "") or "none")
        extra = f" without ultrasound attributes (no SequenceOfUltrasoundRegions, SOP class {sop})"
    flag = f"--allow-modality {modality}" if modality else "--any-modality"
    raise ModalityError(f"{source}: modality {modality or 'none'!r} ({name}){extra} is not ultrasound (US); "
                        f"pass {flag} (API: allow_modalities=[{modality or '*'!r}]) to segment it anyway")


def _named(table: dict, value: Any, default: Any) -> Any:
    """``table[value]``, safe for a malformed (e.g. multi-valued, unhashable) attribute."""
    return table.get(value, default) if isinstance(value, (int, str, type(None))) else default


def _region(item: Any, index: int, rows: int, cols: int) -> Region | str:
    """One SequenceOfUltrasoundRegions item -> Region, or the reason it is not used."""
    fmt, dtype = getattr(item, "RegionSpatialFormat", None), getattr(item, "RegionDataType", None)
    if fmt != 1:
        return f"spatial format {fmt} ({_named(SPATIAL, fmt, 'unknown')}), not 2-D"
    if dtype is not None and dtype != 1:
        return f"data type {dtype} ({_named(DATA_TYPES, dtype, 'unknown')}), not tissue"
    ux, uy = getattr(item, "PhysicalUnitsXDirection", None), getattr(item, "PhysicalUnitsYDirection", None)
    if ux != 3 or uy != 3:
        return f"physical units x={_named(UNITS, ux, ux)}, y={_named(UNITS, uy, uy)}; expected cm (3) in both"
    try:
        dx, dy = abs(float(item.PhysicalDeltaX)), abs(float(item.PhysicalDeltaY))
        x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
        x1, y1 = int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1)
    except (AttributeError, TypeError, ValueError) as e:
        return f"incomplete region ({e})"
    lo, hi = SPACING_RANGE_MM
    if not all(math.isfinite(d) and lo <= d * 10.0 <= hi for d in (dx, dy)):
        return (f"physical delta x={dx:g}, y={dy:g} cm per pixel; expected finite values in "
                f"[{lo / 10:g}, {hi / 10:g}] cm ({lo:g}..{hi:g} mm) per pixel")
    if x1 < x0 or y1 < y0:
        return f"empty location ({x0},{y0})-({x1},{y1})"
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, cols - 1), min(y1, rows - 1)
    if cx1 - cx0 + 1 < MIN_SIDE or cy1 - cy0 + 1 < MIN_SIDE:
        return (f"location ({x0},{y0})-({x1},{y1}) leaves less than {MIN_SIDE}x{MIN_SIDE} px inside the "
                f"{cols}x{rows} image")
    note = "" if (cx0, cy0, cx1, cy1) == (x0, y0, x1, y1) else \
        f"clipped from ({x0},{y0})-({x1},{y1}) to the {cols}x{rows} image"
    return Region(index, (cx0, cy0, cx1 - cx0 + 1, cy1 - cy0 + 1), (dy * 10.0, dx * 10.0), "dicom", None, note)


def ultrasound_regions(ds: Any) -> tuple[bool, list[Region], list[dict[str, Any]]]:
    """(has the sequence, usable tissue regions, skipped ones with reasons); overlaps are skipped."""
    seq = getattr(ds, "SequenceOfUltrasoundRegions", None)
    if seq is None:
        return False, [], []
    try:
        rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    except (TypeError, ValueError) as e:
        raise DataError(f"Rows {getattr(ds, 'Rows', None)!r} / Columns {getattr(ds, 'Columns', None)!r}: "
                        "expected integers") from e
    used: list[Region] = []
    skipped: list[dict[str, Any]] = []
    for i, item in enumerate(seq):
        r = _region(item, i, rows, cols)
        for other in (used if isinstance(r, Region) else []):
            r = resolve_overlap(other, r)
            if not isinstance(r, Region):
                break
        if isinstance(r, Region):
            used.append(r)
        else:
            skipped.append({"index": i, "reason": r})
    return True, used, skipped


def resolve_overlap(first: Region, later: Region) -> Region | str:
    """The overlap rule (docs/runtime.md): ``later`` as it may be used beside ``first``.

    * no overlap: unchanged;
    * the overlap is a strip along one whole side of ``later`` (adjacent regions that
      share a column or row, or a region partly covered): ``later`` is trimmed by it, so
      no pixel is counted twice and no part of the image is dropped;
    * otherwise, or with different spacings where the overlap is more than the 1-px shared
      border: DataError, the frame is refused (its area would depend on which spacing won).
    """
    cut = intersect(first.box, later.box)
    if cut is None:
        return later
    x, y, w, h = later.box
    cx, cy, cw, ch = cut
    same = first.spacing_mm == later.spacing_mm
    if not same and min(cw, ch) > 1:
        raise DataError(f"ultrasound regions {first.index} {list(first.box)} and {later.index} {list(later.box)} "
                        f"overlap by {cw}x{ch} px with different spacings {first.spacing_mm} and "
                        f"{later.spacing_mm} mm; refusing to guess which applies")
    if ch == h and cx == x and cw < w:
        box = (x + cw, y, w - cw, h)
    elif ch == h and cx + cw == x + w and cw < w:
        box = (x, y, w - cw, h)
    elif cw == w and cy == y and ch < h:
        box = (x, y + ch, w, h - ch)
    elif cw == w and cy + ch == y + h and ch < h:
        box = (x, y, w, h - ch)
    elif same:
        return f"lies inside or across tissue region {first.index} with the same spacing (not a side strip)"
    else:
        raise DataError(f"ultrasound regions {first.index} {list(first.box)} and {later.index} {list(later.box)} "
                        f"overlap across a corner with different spacings; refusing to guess which applies")
    if box[2] < MIN_SIDE or box[3] < MIN_SIDE:
        return f"lies (all but {box[2]}x{box[3]} px) inside tissue region {first.index}"
    note = f"trimmed by {cw}x{ch} px shared with tissue region {first.index}"
    return Region(later.index, box, later.spacing_mm, later.source, None,
                  f"{later.note}; {note}" if later.note else note)


def dicom_info(ds: Any, source: str, allow_modalities: Collection[str] | None = None) -> DicomInfo:
    """Check the modality (ModalityError) and read the regions of a parsed dataset."""
    accepted = check_modality(ds, source, allow_modalities)
    try:
        has, used, skipped = ultrasound_regions(ds)
    except DataError as e:
        raise DataError(f"{source}: {e}") from e
    return DicomInfo(modality=_text(ds, "Modality") or "", manufacturer=_text(ds, "Manufacturer"),
                     model=_text(ds, "ManufacturerModelName"), photometric=_text(ds, "PhotometricInterpretation"),
                     sop_class=_text(ds, "SOPClassUID"), has_regions=has, regions=used, skipped=skipped,
                     allowed_by=accepted)


def read_dicom_info(path: str | os.PathLike, allow_modalities: Collection[str] | None = None) -> DicomInfo:
    """The header only (no pixel decoding): checked before any pixel is read."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        materialize(ds)
    except InvalidDicomError as e:
        raise DataError(f"{path}: not a DICOM file ({e})") from e
    except HEADER_ERRORS as e:
        size = path.stat().st_size if path.is_file() else -1
        raise DataError(f"{path}: unreadable or truncated DICOM header ({error_detail(e)}; "
                        f"the file has {size} bytes)") from e
    return dicom_info(ds, str(path), allow_modalities)


# what pydicom raises on a cut or malformed header (struct.error and BytesLengthException
# included: they escaped before and aborted a batch with a traceback)
HEADER_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError,
                                                    OverflowError, AttributeError, struct.error,
                                                    NotImplementedError)  # an unknown VR byte pair
try:
    from pydicom.errors import BytesLengthException

    HEADER_ERRORS += (BytesLengthException,)
except ImportError:  # pragma: no cover - older pydicom
    pass


def materialize(ds: Any, depth: int = 0) -> None:
    """Convert every element (nested sequences too) now, naming the one that fails."""
    from pydicom.datadict import keyword_for_tag

    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
            value = elem.value
        except HEADER_ERRORS as e:
            raise ValueError(f"element {tag} {keyword_for_tag(tag) or 'private'}: {error_detail(e)}") from e
        if elem.VR == "SQ" and depth < 16:
            for item in value or []:
                materialize(item, depth + 1)


def error_detail(e: BaseException) -> str:
    """The class and first line of an error (its detail, not only its message)."""
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    return first if isinstance(e, ValueError) and first.startswith("element ") else f"{type(e).__name__}: {first}"



def apply_palette(arr: Any, ds: Any) -> Any:
    """PALETTE COLOR indices (NxHxW) -> NxHxWx3 RGB uint8 (16-bit LUT entries keep their top byte)."""
    import numpy as np

    try:
        from pydicom.pixels import apply_color_lut
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_color_lut
    try:
        rgb = apply_color_lut(arr, ds)
    except (ValueError, AttributeError, KeyError, IndexError) as e:
        raise DataError(f"{getattr(ds, 'filename', 'DICOM')}: PALETTE COLOR lookup table unusable ({e})") from e
    desc = getattr(ds, "RedPaletteColorLookupTableDescriptor", None)
    bits = int(desc[2]) if desc is not None and len(desc) == 3 else 8 * rgb.dtype.itemsize
    return (rgb >> 8).astype(np.uint8) if bits > 8 else rgb.astype(np.uint8)
