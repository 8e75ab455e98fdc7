"""A DICOM Segmentation (SEG) whose frames are exactly btseg's mask, written with highdicom.

One BINARY segment, "lesion":

* category SNOMED CT 49755003 "Morphologically abnormal structure", type SNOMED CT 4147007
  "Mass" (both in DICOM CID 7150 / CID 7151).  "Mass" is what an ultrasound finding is called
  in the BI-RADS lexicon and what the model sees: a space-occupying structure.  "Neoplasm"
  (108369006) would assert a histology that a B-mode image, and this model, cannot know (cysts
  and fibroadenomas are masses too);
* anatomic region SNOMED CT 76752008 "Breast";
* algorithm type AUTOMATIC, identified as ``btseg`` with its version and the model's weights
  sha256 (and the artifact that ran) as algorithm parameters.

The SEG is in the source's study (patient and study attributes copied by highdicom), has a new
series, and references the source instance; a cine gets one SEG frame per source frame, each
deriving from its source frame.  Empty frames are kept (``omit_empty_frames=False``) so
reading the SEG back gives exactly the mask of every frame.

Example::

    >>> seg = build_seg(read_source("us.dcm"), [mask], ModelIdentity("0.1.0", sha))   # doctest: +SKIP
    >>> write_dataset(seg, Path("out/us_seg.dcm"))                                      # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from btseg.errors import DataError

SEG_SERIES_NUMBER = 9901  # new series in the source's study; high numbers keep them after the scanner's
SR_SERIES_NUMBER = 9902
CATEGORY = ("49755003", "SCT", "Morphologically abnormal structure")
PROPERTY_TYPE = ("4147007", "SCT", "Mass")
BREAST = ("76752008", "SCT", "Breast")
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
SINGLE_FRAME = {"1.2.840.10008.5.1.4.1.1.3.1": US_IMAGE,  # US Multi-frame -> US Image
                "1.2.840.10008.5.1.4.1.1.7.2": "1.2.840.10008.5.1.4.1.1.7",  # multi-frame SC -> SC
                "1.2.840.10008.5.1.4.1.1.7.3": "1.2.840.10008.5.1.4.1.1.7",
                "1.2.840.10008.5.1.4.1.1.7.4": "1.2.840.10008.5.1.4.1.1.7"}
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "Rows", "Columns")


@dataclass(frozen=True)
class ModelIdentity:
    """What produced the mask: btseg's version, the weights sha256 and what ran them."""

    version: str
    weights_sha256: str
    artifact: str | None = None
    backend: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> "ModelIdentity":
        """From :meth:`btseg.runtime.segmenter.Segmenter.info`."""
        import btseg

        target = f"{info.get('target')}/{info.get('precision')}" if info.get("target") else None
        return cls(btseg.__version__, str(info.get("weights_sha256") or ""), info.get("artifact") or target,
                   info.get("backend"))

    def parameters(self) -> dict[str, str]:
        """Algorithm parameters written into the SEG (text; LO values, at most 64 chars)."""
        p = {"weights_sha256": self.weights_sha256 or "unknown"}
        if self.artifact:
            p["artifact"] = str(self.artifact)[:64]
        if self.backend:
            p["backend"] = str(self.backend)[:64]
        return {**p, **self.extra}

    def algorithm(self) -> Any:
        """highdicom AlgorithmIdentificationSequence (family: Artificial Intelligence)."""
        import highdicom as hd
        from pydicom.sr.codedict import codes

        return hd.AlgorithmIdentificationSequence(name="btseg", family=codes.cid7162.ArtificialIntelligence,
                                                  version=self.version, parameters=self.parameters())


def code(triple: tuple[str, str, str]) -> Any:
    """A highdicom CodedConcept from (value, scheme, meaning)."""
    import highdicom as hd

    return hd.sr.CodedConcept(*triple)


def read_source(path: str | os.PathLike) -> Any:
    """The source's header (no pixels); DataError when it cannot carry a SEG back into its study."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: not a readable DICOM file, so no DICOM SEG/SR can be written for it ({e})") from e
    missing = [k for k in REQUIRED if not str(getattr(ds, k, "") or "").strip()]
    if missing:
        raise DataError(f"{path}: DICOM lacks {', '.join(missing)}; a SEG/SR must go into the source's study and "
                        "reference its instance")
    return ds


def build_seg(source: Any, mask: np.ndarray, model: ModelIdentity, frame: int | None = None, *,
              series_uid: str | None = None, sop_uid: str | None = None) -> Any:
    """A BINARY ``hd.seg.Segmentation`` of one frame's bool HxW ``mask``.

    ``frame``: 0-based frame of a multi-frame source (a cine): the SEG references that frame
    (``ReferencedFrameNumber``).  highdicom 0.28 builds a SEG of a multi-frame source only when
    the source has a frame of reference, which ultrasound cines do not; so a cine gets one SEG
    per frame, like its PNG/JSON outputs.
    """
    import highdicom as hd

    frames = int(getattr(source, "NumberOfFrames", 1) or 1)
    rows, cols = int(source.Rows), int(source.Columns)
    if (frame is None) != (frames == 1) or (frame is not None and not 0 <= frame < frames):
        raise DataError(f"{getattr(source, 'filename', 'DICOM')}: frame {frame} of a {frames}-frame source")
    if mask.shape != (rows, cols):
        raise DataError(f"mask {mask.shape} is not the source's {rows}x{cols}")
    view = source
    if frame is not None:  # the one frame as a single-frame image, as highdicom accepts it (see _retarget)
        view = copy.deepcopy(source)
        del view.NumberOfFrames
        view.SOPClassUID = SINGLE_FRAME.get(str(source.SOPClassUID), US_IMAGE)
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion", segmented_property_category=code(CATEGORY),
        segmented_property_type=code(PROPERTY_TYPE), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=model.algorithm(), anatomic_regions=[code(BREAST)],
        tracking_uid=hd.UID(), tracking_id="lesion")
    try:
        seg = hd.seg.Segmentation(
            source_images=[view], pixel_array=np.asarray(mask, dtype=bool).astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[segment],
            series_instance_uid=series_uid or hd.UID(), series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=sop_uid or hd.UID(), instance_number=1, manufacturer="btseg",
            manufacturer_model_name="btseg lesion segmentation", software_versions=model.version,
            device_serial_number=socket.gethostname()[:64] or "unknown", omit_empty_frames=False,
            series_description="btseg lesion SEG", content_label="LESION",
            content_description="btseg automatic lesion segmentation")
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise DataError(f"{getattr(source, 'filename', 'DICOM')}: highdicom cannot build a SEG from this "
                        f"source ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    _fix_2d(seg, source)
    if frame is not None:
        _retarget(seg, source, frame)
    return seg


def _retarget(ds: Any, source: Any, frame: int) -> None:
    """Point every reference to the source instance back at its real SOP class, and every
    source-image reference at frame ``frame`` (1-based ``ReferencedFrameNumber``)."""
    for elem in ds:
        if elem.VR != "SQ":
            continue
        for k, item in enumerate(elem.value):
            if str(getattr(item, "ReferencedSOPInstanceUID", "")) == str(source.SOPInstanceUID):
                item.ReferencedSOPClassUID = source.SOPClassUID
                if elem.keyword == "SourceImageSequence":  # its own item (highdicom shares them)
                    item = elem.value[k] = copy.deepcopy(item)
                    item.ReferencedFrameNumber = frame + 1
            _retarget(item, source, frame)


def _source_refs(seg: Any) -> list[Any]:
    """The Source Image Sequence items of the SEG's first frame."""
    return [s for d in seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence for s in d.SourceImageSequence]


def _fix_2d(seg: Any, source: Any) -> None:
    """Two fixes for a 2-D source (no frame of reference: every ultrasound image).

    * highdicom copies ``PixelSpacing`` into a Pixel Measures item without ``SliceThickness``
      (which a 2-D image has not got), and its own reader then refuses the file; the group is
      optional without a frame of reference, so it is dropped (the spacing is the source's,
      referenced, and the SR carries the area in mm2);
    * ``PatientOrientation`` (General Image, type 2C: required without a plane orientation)
      is the source's, or empty.
    """
    if "FrameOfReferenceUID" in source:
        return
    shared = seg.SharedFunctionalGroupsSequence[0]
    if "PixelMeasuresSequence" in shared and "SliceThickness" not in shared.PixelMeasuresSequence[0]:
        del shared.PixelMeasuresSequence
    seg.PatientOrientation = getattr(source, "PatientOrientation", None) or ""


def write_dataset(ds: Any, path: Path) -> None:
    """Write a DICOM dataset atomically (temporary name, fsync, rename)."""
    from btseg.io import atomic_path

    with atomic_path(path) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)


def seg_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a SEG back with highdicom: segment 1 as a bool HxW array."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    (_, _, uid), = seg.get_source_image_uids()
    item = _source_refs(seg)[0]
    if "ReferencedFrameNumber" in item:
        arr = seg.get_pixels_by_source_frame(uid, [int(item.ReferencedFrameNumber)], segment_numbers=[1])
    else:
        arr = seg.get_pixels_by_source_instance([uid], segment_numbers=[1])
    return arr[0, ..., 0].astype(bool)
