"""Segment only where the ultrasound image is: DICOM tissue regions, ``roi=``, ``roi="auto"``.

A cart's frame grabber or a PACS export gives the whole screen: the B-mode image inside a
frame of text, rulers and logos.  This module decides *where* to segment and does the crop
-> segment -> paste back:

* a DICOM with ``SequenceOfUltrasoundRegions``: each usable 2-D tissue region (see
  :mod:`btseg.runtime.dicom_meta`) is segmented on its own crop at its own spacing;
* ``roi=(x, y, w, h)``: one crop (inside a DICOM's tissue regions when it has them);
* ``roi="auto"``: the B-mode sector/rectangle found by :func:`btseg.runtime.roi_auto.detect_roi`
  (ignored when the DICOM says where its tissue regions are); detection costs far more than
  a frame, so a live loop detects once and passes the :class:`~btseg.runtime.roi_auto.AutoRoi`
  it got as ``roi=`` for the following frames of the same size.

The result (:class:`RegionSegmentation`) is at the full image size; no mask pixel and no
area ever comes from outside a region, and the JSON record lists the regions used and the
ones skipped with the reason.

Example::

    >>> out = segmenter.segment(frame, roi=(120, 60, 512, 400))   # doctest: +SKIP
    >>> out.to_record()["regions"][0]["box"]                       # doctest: +SKIP
    [120, 60, 512, 400]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from btseg.errors import ConfigError, DataError
from btseg.runtime.arrays import check_image
from btseg.runtime.postprocess import Segmentation, measure, normalize_spacing

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
MIN_SIDE = 16  # a crop smaller than this holds no lesion worth segmenting


@dataclass
class Region:
    """One part of the image to segment on its own.

    Attributes:
        index: the item number in SequenceOfUltrasoundRegions (0 for a roi).
        box: (x, y, w, h) inside the image.
        spacing_mm: (row, col) mm per pixel in this region, or None (area in px only).
        source: ``dicom``, ``roi`` or ``auto``.
        mask: HxW bool inside ``box`` (a detected sector), or None for the whole box.
        note: why the box differs from what the source said (clipped, intersected), or "".
    """

    index: int
    box: Box
    spacing_mm: tuple[float, float] | None
    source: str
    mask: np.ndarray | None = None
    note: str = ""

    def record(self) -> dict[str, Any]:
        """JSON-able description (no arrays)."""
        rec = {"index": self.index, "source": self.source, "box": list(self.box),
               "spacing_mm": list(self.spacing_mm) if self.spacing_mm else None}
        if self.mask is not None:
            rec["mask_px"] = int(np.count_nonzero(self.mask))
        if self.note:
            rec["note"] = self.note
        return rec


@dataclass
class RegionSegmentation(Segmentation):
    """A :class:`Segmentation` pasted together from regions; ``regions`` say which and how much."""

    regions: list[dict[str, Any]] = field(default_factory=list)
    regions_skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        """The plain record plus ``regions`` (used, with area each) and ``regions_skipped``."""
        return {**super().to_record(), "regions": self.regions, "regions_skipped": self.regions_skipped}


def parse_roi(text: str | None) -> Box | str | None:
    """``"X,Y,W,H"`` -> (x, y, w, h); ``"auto"`` -> ``"auto"``; None/"" -> None.

    Raises ConfigError for anything else (non-integers, negative origin, W or H < 1).
    """
    if text is None or str(text).strip() == "":
        return None
    s = str(text).strip()
    if s.lower() == "auto":
        return "auto"
    try:
        vals = [int(v) for v in s.split(",")]
    except ValueError:
        vals = []
    if len(vals) != 4 or vals[0] < 0 or vals[1] < 0 or vals[2] < 1 or vals[3] < 1:
        raise ConfigError(f"roi {text!r}: expected X,Y,W,H (integers, X,Y >= 0, W,H >= 1) or 'auto'")
    return vals[0], vals[1], vals[2], vals[3]


def check_roi(roi: Any, shape: tuple[int, ...], what: str = "image") -> Box:
    """A roi as (x, y, w, h) that lies wholly inside an image of ``shape``, else DataError."""
    try:
        x, y, w, h = (int(v) for v in roi)
        ok = all(float(v) == int(v) for v in roi)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DataError(f"roi {roi!r}: expected (x, y, w, h) integers or 'auto'")
    H, W = int(shape[0]), int(shape[1])
    if w < 1 or h < 1:
        raise DataError(f"roi {roi!r} is empty (w={w}, h={h}); expected w, h >= 1")
    if x < 0 or y < 0 or x + w > W or y + h > H:
        raise DataError(f"roi {(x, y, w, h)} is outside the {W}x{H} {what} (need x+w <= {W}, y+h <= {H})")
    return x, y, w, h


def intersect(a: Box, b: Box) -> Box | None:
    """The overlap of two boxes, or None."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def plan_regions(image: np.ndarray, dicom: Any, roi: Any, spacing_mm: Any,
                 source: str = "image") -> tuple[list[Region], list[dict[str, Any]]] | None:
    """Where to segment ``image``: None for the whole image, else (regions, skipped).

    ``dicom`` is the frame's :class:`btseg.runtime.dicom_meta.DicomInfo` (or None).
    """
    h, w = image.shape[:2]
    has = dicom is not None and dicom.has_regions
    skipped = list(dicom.skipped) if has else []
    if has and not dicom.regions:
        why = "; ".join(f"region {s['index']}: {s['reason']}" for s in skipped)
        raise DataError(f"{source}: SequenceOfUltrasoundRegions has no usable 2-D tissue region ({why})")
    base = list(dicom.regions) if has else None
    if roi is None:
        return (base, skipped) if base is not None else None
    if isinstance(roi, str) and roi.lower() == "auto":
        if base is not None:  # the file says where its tissue is; a guess cannot do better
            return base, skipped
        from btseg.runtime.roi_auto import detect_roi

        found = detect_roi(image, source)
        return [Region(0, found.box, normalize_spacing(spacing_mm), "auto", found.mask,
                       f"detected, textured fraction {found.score:.2f}")], skipped
    if hasattr(roi, "full") and hasattr(roi, "box"):  # a detect_roi() result, found once, used per frame
        if roi.full.shape != (h, w):
            raise DataError(f"{source}: detected roi is for a {roi.full.shape[1]}x{roi.full.shape[0]} image, "
                            f"this one is {w}x{h}; detect again")
        if base is None:
            return [Region(0, roi.box, normalize_spacing(spacing_mm), "auto", roi.mask, "detected earlier")], skipped
        roi = roi.box
    box = check_roi(roi, (h, w), f"{source} image")
    if base is None:
        return [Region(0, box, normalize_spacing(spacing_mm), "roi")], skipped
    out = []
    for r in base:
        cut = intersect(r.box, box)
        if cut is None:
            skipped.append({"index": r.index, "reason": f"outside roi {list(box)}"})
        else:
            out.append(Region(r.index, cut, r.spacing_mm, r.source, None, f"tissue region {list(r.box)} cut by roi"))
    if not out:
        raise DataError(f"{source}: roi {list(box)} does not overlap any ultrasound tissue region "
                        f"({', '.join(str(list(r.box)) for r in base)})")
    return out, skipped


SegmentFn = Callable[[np.ndarray, Any], Segmentation]


def segment_regions(segment: SegmentFn, image: np.ndarray, regions: list[Region],
                    skipped: list[dict[str, Any]]) -> RegionSegmentation:
    """Segment each region's crop with ``segment(crop, spacing)``, paste back at full size."""
    t0 = time.perf_counter()
    H, W = image.shape[:2]
    mask = np.zeros((H, W), bool)
    prob = np.zeros((H, W), np.float32)
    inside = np.zeros((H, W), bool)
    used, timings = [], {}
    presence, present = 0.0, False
    for r in regions:
        x, y, w, h = r.box
        s = segment(image[y:y + h, x:x + w], r.spacing_mm)
        keep = s.mask if r.mask is None else s.mask & r.mask
        where = np.ones((h, w), bool) if r.mask is None else r.mask
        mask[y:y + h, x:x + w] |= keep
        presence, present = max(presence, s.presence), present or (s.lesion_present and bool(keep.any()))
        prob[y:y + h, x:x + w] = np.where(where, s.prob, prob[y:y + h, x:x + w])
        inside[y:y + h, x:x + w] |= where
        n = int(np.count_nonzero(keep))
        sp = r.spacing_mm
        used.append({**r.record(), "area_px": n, "area_mm2": n * sp[0] * sp[1] if sp else None})
        for k, v in s.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    area, bbox, contour = measure(mask)
    conf = float(prob[mask].mean()) if area else float(1.0 - (prob[inside].max() if inside.any() else 0.0))
    mm2 = [u["area_mm2"] for u in used]
    spacings = {tuple(r.spacing_mm) for r in regions if r.spacing_mm}
    seg = RegionSegmentation(mask=mask, prob=prob, area_px=area,
                             area_mm2=None if None in mm2 else float(sum(mm2)), bbox=bbox, contour=contour,
                             confidence=conf, spacing_mm=next(iter(spacings)) if len(spacings) == 1 else None,
                             regions=used, regions_skipped=list(skipped), lesion_present=present,
                             presence=presence)
    seg.timings = {**timings, "total_ms": (time.perf_counter() - t0) * 1e3, "regions": len(regions)}
    return seg


def segment_where(segment: SegmentFn, image: Any, spacing_mm: Any, roi: Any) -> RegionSegmentation | None:
    """The Segmenter's hook: regions/roi of ``image`` (array or Frame) -> result, or None
    when the whole image is to be segmented as before."""
    dicom = getattr(image, "dicom", None)
    if roi is None and (dicom is None or not dicom.has_regions):
        return None
    img = check_image(getattr(image, "image", image))
    if spacing_mm is None:
        spacing_mm = getattr(image, "spacing_mm", None)
    plan = plan_regions(img, dicom, roi, spacing_mm, getattr(image, "source", "array"))
    if plan is None:
        return None
    for r in plan[0]:
        if min(r.box[2], r.box[3]) < MIN_SIDE:
            raise DataError(f"{getattr(image, 'source', 'array')}: region {list(r.box)} is smaller than "
                            f"{MIN_SIDE}x{MIN_SIDE} px; nothing to segment there")
    return segment_regions(segment, img, *plan)
