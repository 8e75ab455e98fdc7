"""Build small DICOM files with pydicom for the tests (uncompressed, Explicit VR Little Endian)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def write_dicom(path: Path, frames: np.ndarray, photometric: str | None = None, bits_stored: int | None = None,
                pixel_spacing: tuple[float, float] | None = (0.1, 0.1), region_delta_cm: tuple[float, float] | None = None,
                pixels: bool = True, regions: list[dict] | None = None, modality: str = "US",
                manufacturer: str | None = None, attrs: dict | None = None) -> Path:
    """``frames``: HxW[xC] or NxHxW[xC] of (u)int8/16/32 (signed: PixelRepresentation 1); N > 1
    writes a multi-frame cine.

    ``regions``: SequenceOfUltrasoundRegions items as attribute dicts (keyword -> value).
    ``attrs``: more attributes (keyword -> value, e.g. WindowCenter), set last.
    """
    multi = frames.ndim == 4 or (frames.ndim == 3 and frames.shape[-1] not in (3,))
    arr = frames if multi else frames[None]
    n, rows, cols = arr.shape[:3]
    samples = arr.shape[3] if arr.ndim == 4 else 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME if n > 1 else US_IMAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    # patient / study / series: what a SEG or SR written back into the study copies
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Breast", "BTSEG-TEST", "", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "ACC1"
    ds.ReferringPhysicianName, ds.SeriesNumber, ds.InstanceNumber = "", 1, 1
    if manufacturer:
        ds.Manufacturer = manufacturer
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.PhotometricInterpretation = photometric or ("RGB" if samples == 3 else "MONOCHROME2")
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits_stored or bits, (bits_stored or bits) - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    if n > 1:
        ds.NumberOfFrames = n
    if pixel_spacing:
        ds.PixelSpacing = list(pixel_spacing)
    if region_delta_cm:
        region = Dataset()
        region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
        region.PhysicalDeltaX, region.PhysicalDeltaY = region_delta_cm
        ds.SequenceOfUltrasoundRegions = [region]
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = region_items(regions)
    if pixels:
        ds.PixelData = np.ascontiguousarray(arr).tobytes()
    for key, value in (attrs or {}).items():
        setattr(ds, key, value)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def region_items(regions):
    """SequenceOfUltrasoundRegions items from dicts of attribute -> value."""
    from pydicom.dataset import Dataset

    items = []
    for attrs in regions:
        item = Dataset()
        for key, value in attrs.items():
            setattr(item, key, value)
        items.append(item)
    return items


def write_jpeg_cine(path: Path, frames: list[np.ndarray], declared: int | None = None,
                    fragments: list[bytes] | None = None) -> Path:
    """A JPEG baseline cine (one fragment per frame) of HxW uint8 frames; ``declared`` sets
    NumberOfFrames (default: the frame count), ``fragments`` replaces the encoded frames."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from video_util import jpeg_bytes

    path = write_dicom(path, np.stack(frames))
    import pydicom

    ds = pydicom.dcmread(str(path))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate(fragments if fragments is not None else [jpeg_bytes(f) for f in frames])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.NumberOfFrames = declared if declared is not None else len(frames)
    ds.save_as(str(path), enforce_file_format=True)
    return path
