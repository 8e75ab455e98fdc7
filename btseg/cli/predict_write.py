"""Writing one frame's outputs: mask, overlay, ``--dicom`` SEG + SR, JSON record.

Each path is cleared by the :class:`~btseg.cli.predict_outputs.OutputPolicy` first and, in
a ``btseg-predict`` run, registered in the run's journal as one group
(:mod:`btseg.cli.predict_journal`): a frame has all its files or none.  The record is
written last (strict JSON) and lists every other file with its sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from btseg.cli.predict_inputs import WRITER
from btseg.cli.predict_journal import OutputJournal
from btseg.cli.predict_outputs import OutputPolicy, output_names
from btseg.io import sha256_file, write_json, write_png
from btseg.runtime.inputs import Frame


def display_bgr(image: np.ndarray) -> np.ndarray:
    """Any supported frame -> HxWx3 uint8 BGR for the overlay."""
    img = image[..., :3] if image.ndim == 3 and image.shape[2] >= 3 else (image[..., 0] if image.ndim == 3 else image)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype.kind == "f":
        lo, hi = float(img.min()), float(img.max())
        img = img if (lo >= 0 and hi <= 1) else (img - lo) / max(hi - lo, 1e-12)
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR if img.ndim == 2 else cv2.COLOR_RGB2BGR)


def save_outputs(frame: Frame, seg: Any, folder: Path, overlay: bool, backend: dict[str, Any],
                 policy: OutputPolicy, dicom: Any = None, journal: OutputJournal | None = None) -> dict[str, Any]:
    """Write mask / overlay / SEG + SR (``dicom``: a :class:`btseg.dicom.writer.DicomOutputs`) /
    JSON record for one frame (each path cleared by ``policy`` first, registered in ``journal``
    as one group: all written, or none left); return the record."""
    if journal is None:
        return _save(frame, seg, folder, overlay, backend, policy, dicom, lambda p: p)
    with journal.group() as g:
        return _save(frame, seg, folder, overlay, backend, policy, dicom, g.add)


def _save(frame: Frame, seg: Any, folder: Path, overlay: bool, backend: dict[str, Any], policy: OutputPolicy,
          dicom: Any, register: Any) -> dict[str, Any]:
    name = frame.name
    paths = [register(policy.claim(folder / n)) for n in output_names(name, overlay, dicom is not None)]
    write_png(paths[0], seg.mask.astype(np.uint8) * 255)
    record: dict[str, Any] = {"name": name, "input": frame.source, "frame": frame.index,
                              "frames_declared": frame.declared, **seg.to_record(),
                              "mask": paths[0].name, "backend": backend,
                              "dicom": frame.dicom.record() if frame.dicom is not None else None}
    if overlay:
        canvas = display_bgr(frame.image)
        contours, _ = cv2.findContours(seg.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, (0, 255, 0), max(1, min(canvas.shape[:2]) // 200))
        for r in getattr(seg, "regions", None) or []:  # where btseg looked (tissue regions, roi)
            x, y, w, h = r["box"]
            cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), (0, 200, 255), 1)
        write_png(paths[1], canvas)
        record["overlay"] = paths[1].name
    if dicom is not None:  # the SEG's frame is seg.mask itself: exactly the PNG above
        seg_path, sr_path = paths[-3], paths[-2]
        record["dicom_out"] = {"seg": seg_path.name, "sr": sr_path.name,
                               **dicom.write(frame.source, frame.index, seg.mask, record, seg_path, sr_path)}
    # what lets a later --overwrite run prove these files are btseg's own, unchanged
    record["writer"] = WRITER
    record["files"] = {p.name: sha256_file(p) for p in paths[:-1]}
    for p in paths[:-1]:
        policy.recorded(p, record["files"][p.name])
    write_json(paths[-1], record, strict=True)  # no NaN/Infinity: strict JSON or nothing
    return record
