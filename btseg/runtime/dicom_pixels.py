"""DICOM pixel data as a viewer shows it, decoded frame by frame.

* **Values.** Monochrome frames go through the Modality LUT (``RescaleSlope`` /
  ``RescaleIntercept`` or ``ModalityLUTSequence``) and then the VOI LUT (``VOILUTSequence``,
  else the first ``WindowCenter`` / ``WindowWidth`` with ``VOILUTFunction``), with pydicom's
  own ``apply_modality_lut`` / ``apply_voi_lut``; the output range of that chain is then
  mapped to the display range (uint8 0..255 for data stored in at most 8 bits with no LUT or
  window, else uint16 0..65535), MONOCHROME1 inverted.  Without a VOI the range is the one
  the header declares: ``BitsStored`` and ``PixelRepresentation`` (signed), through the
  Modality LUT.  Colour (RGB, YBR converted by pydicom) is never windowed; data stored in
  more than 8 bits is scaled from its ``BitsStored`` range.
* **Refused with the attribute named**: ``BitsAllocated`` other than 1/8/16/32,
  ``BitsStored`` outside 1..BitsAllocated, ``PixelRepresentation`` other than 0/1,
  ``SamplesPerPixel`` other than 1/3 or not matching the photometric interpretation, an
  unknown or unsupported ``PhotometricInterpretation``, a non-finite or zero rescale, a
  window pydicom cannot apply (``WindowWidth`` < 1, unknown ``VOILUTFunction``).
* **Frames.** Each frame is decoded on its own, so a missing fragment (fewer fragments than
  ``NumberOfFrames``), a fragment that is not a whole codestream (no SOI / EOI marker), a
  JPEG frame whose last 8x8 block is libjpeg's flat grey fill, native pixel data that ends
  early, or a decoder error is an error *of that frame*; the others decode.
* **Decoders.** Compressed syntaxes need pydicom's plugins; a missing one is reported with
  the transfer syntax, its UID, every plugin pydicom knows with what it requires, and the
  ``btseg[dicom]`` extra (:data:`DICOM_EXTRA`) that installs them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from btseg.errors import DataError
from btseg.imageio import grey_filled

DICOM_EXTRA = ("pip install 'btseg[dicom]' (pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle: "
               "JPEG, JPEG lossless, JPEG-LS, JPEG 2000, RLE)")
MONO = ("MONOCHROME1", "MONOCHROME2")
COLOR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")
JPEG_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                 "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
PILLOW_STRICT = {"1.2.840.10008.1.2.4.50"}  # pillow refuses broken baseline streams pylibjpeg decodes


def _int(ds: Any, name: str, default: int | None, what: str) -> int:
    v = getattr(ds, name, default)
    try:
        return int(v)
    except (TypeError, ValueError):
        raise DataError(f"{what}: DICOM {name}={v!r} is not an integer") from None


def check_pixel_module(ds: Any, what: str) -> None:
    """Refuse a pixel encoding btseg cannot show as a viewer would, naming the attribute."""
    allocated = _int(ds, "BitsAllocated", None, what) if "BitsAllocated" in ds else None
    if allocated not in (1, 8, 16, 32):
        raise DataError(f"{what}: DICOM BitsAllocated={allocated}; expected 1, 8, 16 or 32")
    stored = _int(ds, "BitsStored", allocated, what)
    if not 1 <= stored <= allocated:
        raise DataError(f"{what}: DICOM BitsStored={stored} with BitsAllocated={allocated}; expected 1..{allocated}")
    rep = _int(ds, "PixelRepresentation", 0, what)
    if rep not in (0, 1):
        raise DataError(f"{what}: DICOM PixelRepresentation={rep}; expected 0 (unsigned) or 1 (signed)")
    pi = str(getattr(ds, "PhotometricInterpretation", "") or "").strip().upper()
    samples = _int(ds, "SamplesPerPixel", 1, what)
    want = 1 if pi in MONO or pi == "PALETTE COLOR" else 3 if pi in COLOR else None
    if want is None:
        raise DataError(f"{what}: DICOM PhotometricInterpretation={pi or 'missing'!r}; expected one of "
                        f"{', '.join(MONO + COLOR)}, PALETTE COLOR")
    if samples != want:
        raise DataError(f"{what}: DICOM SamplesPerPixel={samples} with PhotometricInterpretation {pi}; "
                        f"expected {want}")
    for name in ("RescaleSlope", "RescaleIntercept"):
        if name in ds and "ModalityLUTSequence" not in ds:
            v = getattr(ds, name)
            try:
                ok = v is not None and math.isfinite(float(v)) and (name != "RescaleSlope" or float(v) != 0)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise DataError(f"{what}: DICOM {name}={v!r}; expected a finite number" +
                                (" other than 0" if name == "RescaleSlope" else ""))


@dataclass(frozen=True)
class Mapping:
    """How stored values become display values: the chain's output range ``lo..hi`` is
    mapped to 0..max of ``dtype``; ``record()`` says what was applied (for the JSON)."""

    mono: bool
    lo: float
    hi: float
    invert: bool
    dtype: type
    modality: str
    voi: str

    def record(self) -> dict[str, Any]:
        """JSON-able description of the mapping."""
        return {"modality_lut": self.modality, "voi": self.voi, "range": [self.lo, self.hi],
                "inverted": self.invert, "output": np.dtype(self.dtype).name}


def _has_voi(ds: Any) -> bool:
    return "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)


def mapping_of(ds: Any, what: str) -> Mapping:
    """The display mapping the header asks for (checked with :func:`check_pixel_module`)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    check_pixel_module(ds, what)
    pi = str(ds.PhotometricInterpretation).strip().upper()
    stored, rep = int(getattr(ds, "BitsStored", ds.BitsAllocated)), int(getattr(ds, "PixelRepresentation", 0))
    lo, hi = (-(2 ** (stored - 1)), 2 ** (stored - 1) - 1) if rep else (0, 2 ** stored - 1)
    if pi not in MONO:
        return Mapping(False, float(lo), float(hi), False, np.uint8 if stored <= 8 else np.uint16, "none", "none")
    if "ModalityLUTSequence" in ds:
        modality = "ModalityLUTSequence"
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif float(getattr(ds, "RescaleSlope", 1) or 1) != 1 or float(getattr(ds, "RescaleIntercept", 0) or 0) != 0:
        modality = f"rescale {float(ds.RescaleSlope):g} * x + {float(ds.RescaleIntercept):g}"
        ends = apply_modality_lut(np.array([lo, hi], np.float64), ds)
        lo, hi = float(ends.min()), float(ends.max())
    else:
        modality = "none"
    voi = "none"
    if _has_voi(ds):
        try:
            if "VOILUTSequence" in ds:
                voi = "VOILUTSequence"
                lo, hi = 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
            else:
                c, w = ds["WindowCenter"], ds["WindowWidth"]
                first = (lambda e: e.value[0] if e.VM > 1 else e.value)
                voi = (f"window center {float(first(c)):g} width {float(first(w)):g} "
                       f"{str(getattr(ds, 'VOILUTFunction', 'LINEAR') or 'LINEAR').upper()}")
                with np.errstate(all="ignore"):  # the range: pydicom's output at both extremes
                    ends = apply_voi_lut(np.array([-1e30, 1e30], np.float64), ds)
                lo, hi = float(ends[0]), float(ends[1])  # not sorted: below the window is black
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise DataError(f"{what}: DICOM VOI LUT / window unusable ({e}); check WindowCenter, WindowWidth, "
                            f"VOILUTFunction, VOILUTSequence") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi != lo):
        raise DataError(f"{what}: DICOM pixel value range {lo:g}..{hi:g} after the Modality LUT / window is empty")
    small = stored <= 8 and modality == "none" and voi == "none"
    return Mapping(True, lo, hi, pi == "MONOCHROME1", np.uint8 if small else np.uint16, modality, voi)


def to_display(arr: np.ndarray, ds: Any, m: Mapping) -> np.ndarray:
    """Decoded stored values (one frame, or N frames) -> display values per ``m``."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if m.mono:
        try:
            arr = apply_modality_lut(arr, ds)
            if _has_voi(ds):
                arr = apply_voi_lut(arr, ds)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError) as e:
            raise DataError(f"{getattr(ds, 'filename', None) or 'DICOM'}: Modality LUT / VOI LUT cannot be applied "
                            f"({m.modality}; {m.voi}): {_line(e)}") from None
    top = float(np.iinfo(m.dtype).max)
    if not m.mono and m.dtype == np.uint8 and arr.dtype == np.uint8:
        return arr
    t = (np.asarray(arr, np.float64) - m.lo) / (m.hi - m.lo)
    t = np.clip(t, 0.0, 1.0)
    if m.invert:
        t = 1.0 - t
    return np.rint(t * top).astype(m.dtype)


def missing_decoder(ds: Any, what: str) -> str | None:
    """None when pydicom can decode this transfer syntax, else the whole message: the syntax,
    its UID, each plugin with what it requires, and the extra that installs them."""
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if uid is None:
        return None
    try:
        dec = get_decoder(uid)
    except NotImplementedError:
        return f"{what}: no pixel data decoder exists for transfer syntax {uid.name} ({uid})"
    if dec.is_available:
        return None
    needs = "; ".join(dec.missing_dependencies) or "none listed"
    return (f"{what}: cannot decode transfer syntax {uid.name} ({uid}): no decoder plugin is installed "
            f"(pydicom plugins and what they need: {needs}); {DICOM_EXTRA}")


def frame_count(ds: Any, what: str) -> int:
    """``NumberOfFrames`` (1 when absent); refused when not a positive integer."""
    n = _int(ds, "NumberOfFrames", 1, what) if getattr(ds, "NumberOfFrames", None) not in (None, "") else 1
    if n < 1:
        raise DataError(f"{what}: DICOM NumberOfFrames={n}; expected 1 or more")
    return n


def _check_codestream(data: bytes, uid: str) -> str | None:
    """Why a JPEG-family frame is not a whole codestream (SOI at the start, EOI at the end)."""
    if uid not in JPEG_SYNTAXES:
        return None
    if not data.startswith(b"\xff\xd8"):
        return "fragment does not start with a JPEG SOI marker"
    if not data.rstrip(b"\x00\xff").endswith(b"\xff\xd9"):  # padding after EOI: 0x00 or 0xFF
        return "JPEG codestream has no end-of-image marker (truncated)"
    return None


def decode_frames(ds: Any, what: str) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    """(index, stored values or None, error or None) for every frame ``NumberOfFrames`` declares."""
    from pydicom.pixels import pixel_array

    n = frame_count(ds, what)
    uid = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if not ds["PixelData"].is_undefined_length:  # native: all at once, or the whole frames there are
        yield from _native(ds, n, what)
        return
    why = missing_decoder(ds, what)
    if why:
        raise DataError(why)
    from pydicom.encaps import get_frame

    plugin = ""
    if uid in PILLOW_STRICT:
        from pydicom.pixels import get_decoder

        plugin = "pillow" if "pillow" in get_decoder(uid).available_plugins else ""
    for i in range(n):
        try:
            data = get_frame(ds.PixelData, i, number_of_frames=n)
        except (ValueError, IndexError, KeyError, RuntimeError, StopIteration, EOFError, struct.error) as e:
            # struct.error: a damaged Basic Offset Table length (hypothesis found it)
            yield i, None, f"frame {i} of {n}: missing from the encapsulated pixel data ({_line(e)})"
            continue
        bad = _check_codestream(data, uid)
        if bad:
            yield i, None, f"frame {i} of {n}: {bad}"
            continue
        try:
            img = pixel_array(ds, index=i, decoding_plugin=plugin)
        except Exception as e:  # noqa: BLE001 - any decoder failure is this frame's error, named
            yield i, None, f"frame {i} of {n}: cannot be decoded ({_line(e)})"
            continue
        if uid in JPEG_SYNTAXES and grey_filled(img):
            yield i, None, (f"frame {i} of {n}: JPEG data ends early (its last 8x8 block is flat grey 128, "
                            "what libjpeg fills in for missing data)")
            continue
        yield i, img, None


def _native(ds: Any, n: int, what: str) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    rows, cols, samples = int(ds.Rows), int(ds.Columns), int(getattr(ds, "SamplesPerPixel", 1))
    bits = int(ds.BitsAllocated)
    if str(getattr(ds, "PhotometricInterpretation", "")).strip().upper() == "YBR_FULL_422":
        samples = 2  # native 4:2:2: two values per pixel (Y, and Cb or Cr)
    per = rows * cols * samples * bits // 8 if bits >= 8 else None
    have = len(ds.PixelData)
    whole = n if per is None or have >= per * n else have // per
    if whole:
        if whole < n:
            ds = _first_frames(ds, whole, per)
        try:
            arr = ds.pixel_array
        except Exception as e:  # noqa: BLE001 - a decoder failure names the file, never a traceback
            raise DataError(f"{what}: DICOM pixel data cannot be decoded ({_line(e)})") from e
        arr = arr[None] if whole == 1 else arr
        for i in range(whole):
            yield i, arr[i], None
    for i in range(whole, n):
        yield i, None, (f"frame {i} of {n}: missing (the DICOM pixel data holds {have} bytes, {whole} whole frame(s) "
                        f"of {per} bytes)")


def _first_frames(ds: Any, k: int, per: int) -> Any:
    import copy

    short = copy.copy(ds)  # shallow: the caller's dataset keeps its own attributes
    short.NumberOfFrames = k
    short.PixelData = ds.PixelData[:k * per]
    return short


def _line(e: BaseException) -> str:
    text = " ".join(s.strip() for s in str(e).splitlines() if s.strip())
    return text or type(e).__name__
