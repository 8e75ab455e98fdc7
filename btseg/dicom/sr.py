"""A TID 1500 measurement report (Comprehensive 3D SR) for one segmented frame, with highdicom.

Content, per frame (a cine gets one SR per frame, beside its SEG; see :mod:`btseg.dicom.seg`):

* observer: the device ``btseg`` (its version as model name);
* procedure reported: SNOMED CT 47079000 "Ultrasonography of breast";
* one TID 1410 planar ROI group that references the SEG's segment 1 (and through it the
  source image and frame), finding type "Mass", with:

  - qualitative evaluation "Presence of property" (DCM 121052) = "Present" / "Absent";
  - "Probability" (DCM 122157, UCUM ``1``): btseg's confidence in that finding (mean lesion
    probability inside the mask, or ``1 - max`` probability when nothing was found);
  - "Area" (SNOMED CT 42798000) in UCUM ``mm2``, **only when the pixel spacing is known**;

  each measurement names the algorithm (btseg, version) that made it;
* when a lesion was found, a second TID 1410 group whose region is the bounding box (a closed
  POLYLINE in the source image's pixel coordinates, frame referenced for a cine).

The weights sha256 is in the SEG's algorithm identification; here the algorithm version is
``<btseg version> weights <sha256 prefix>`` so the two files name the same model.

Example::

    >>> sr = build_sr(source, seg, record, ModelIdentity("0.1.0", sha))   # doctest: +SKIP
"""

from __future__ import annotations

import socket
from typing import Any

import numpy as np

from btseg.dicom.seg import BREAST, SR_SERIES_NUMBER, ModelIdentity, code
from btseg.errors import DataError

BREAST_US = ("47079000", "SCT", "Ultrasonography of breast")
AREA = ("42798000", "SCT", "Area")
PRESENCE = ("121052", "DCM", "Presence of property")
PRESENT, ABSENT = ("121053", "DCM", "Present"), ("121054", "DCM", "Absent")
PROBABILITY = ("122157", "DCM", "Probability")
MASS = ("4147007", "SCT", "Mass")
MM2, NO_UNITS = ("mm2", "UCUM", "square millimeter"), ("1", "UCUM", "no units")


def build_sr(source: Any, seg: Any, record: dict[str, Any], model: ModelIdentity, frame: int | None = None,
             *, series_uid: str | None = None, sop_uid: str | None = None) -> Any:
    """``hd.sr.Comprehensive3DSR`` for one frame's result ``record`` (``Segmentation.to_record()``:
    ``area_px``, ``area_mm2``, ``bbox``, ``confidence``), referencing ``seg`` and ``source``."""
    import highdicom as hd

    algo = hd.sr.AlgorithmIdentification(name="btseg", version=_version(model))
    src_img = hd.sr.SourceImageForSegmentation(
        str(source.SOPClassUID), str(source.SOPInstanceUID),
        referenced_frame_numbers=[frame + 1] if frame is not None else None)
    ref_seg = hd.sr.ReferencedSegmentationFrame(
        sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID), frame_number=1,
        segment_number=1, source_image=src_img)
    found = bool(record.get("area_px"))
    measurements = [hd.sr.Measurement(name=code(PROBABILITY), value=float(record["confidence"]),
                                      unit=code(NO_UNITS), algorithm_id=algo)]
    if record.get("area_mm2") is not None:
        measurements.append(hd.sr.Measurement(name=code(AREA), value=float(record["area_mm2"]),
                                              unit=code(MM2), algorithm_id=algo))
    presence = hd.sr.QualitativeEvaluation(code(PRESENCE), code(PRESENT if found else ABSENT))
    suffix = f" frame {frame + 1}" if frame is not None else ""
    groups = [hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"lesion{suffix}"),
        referenced_segment=ref_seg, finding_type=code(MASS), algorithm_id=algo,
        finding_sites=[hd.sr.FindingSite(code(BREAST))], measurements=measurements,
        qualitative_evaluations=[presence])]
    if found and record.get("bbox"):
        x, y, w, h = (float(v) for v in record["bbox"])
        corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=np.float32)
        region_src = hd.sr.SourceImageForRegion(str(source.SOPClassUID), str(source.SOPInstanceUID),
                                                referenced_frame_numbers=[frame + 1] if frame is not None else None)
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"lesion bounding box{suffix}"),
            referenced_region=hd.sr.ImageRegion(hd.sr.GraphicTypeValues.POLYLINE, corners, region_src),
            finding_type=code(MASS), algorithm_id=algo))
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="btseg", manufacturer_name="btseg", model_name=_version(model)[:64],
            physical_location=socket.gethostname()[:64] or None))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code(BREAST_US), imaging_measurements=groups)
    try:
        sr = hd.sr.Comprehensive3DSR(
            evidence=[source, seg], content=report, series_instance_uid=series_uid or hd.UID(),
            series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_uid or hd.UID(), instance_number=1,
            manufacturer="btseg", is_complete=True, series_description="btseg lesion measurements")
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise DataError(f"{getattr(source, 'filename', 'DICOM')}: highdicom cannot build the SR "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") from e
    _segment_only(sr, str(seg.SOPInstanceUID))
    return sr


def _segment_only(ds: Any, seg_uid: str) -> None:
    """A reference to the SEG names segment 1 and no frame: PS3.3 Table 10-3 allows Referenced
    Frame Number and Referenced Segment Number together in no item (dciodvfy checks it), and
    highdicom 0.28's TID 1410 writes both.  The SEG has one frame, so the segment says it all."""
    for elem in ds:
        if elem.VR != "SQ":
            continue
        for item in elem.value:
            if (str(getattr(item, "ReferencedSOPInstanceUID", "")) == seg_uid and "ReferencedSegmentNumber" in item
                    and "ReferencedFrameNumber" in item):
                del item.ReferencedFrameNumber
            _segment_only(item, seg_uid)


def _version(model: ModelIdentity) -> str:
    return f"{model.version} weights {model.weights_sha256[:16] or 'unknown'}"


def sr_values(path: Any) -> dict[str, Any]:
    """Read an SR written here back with highdicom: area in mm2 (or None), probability,
    presence and the SEG instance it references."""
    import highdicom as hd

    sr = hd.sr.srread(str(path))
    group = sr.content.get_planar_roi_measurement_groups()[0]
    out: dict[str, Any] = {"area_mm2": None, "probability": None, "presence": None, "seg_uid": None}
    for m in group.get_measurements():
        if m.name.value == AREA[0]:
            out["area_mm2"], out["area_unit"] = float(m.value), m.unit.value
        elif m.name.value == PROBABILITY[0]:
            out["probability"] = float(m.value)
    for q in group.get_qualitative_evaluations():
        out["presence"] = q.value.meaning
    ref = group.referenced_segmentation_frame
    out["seg_uid"] = str(ref.referenced_sop_instance_uid) if ref is not None else None
    return out
