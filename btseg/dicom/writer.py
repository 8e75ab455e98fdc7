"""SEG + SR for one segmented DICOM frame: what ``btseg-predict --dicom`` and ``btseg-serve
dicom`` write beside the PNG mask and the JSON record.

Example::

    >>> out = DicomOutputs(ModelIdentity.from_info(segmenter.info()))   # doctest: +SKIP
    >>> out.check_input(Path("scan.png"))       # DataError: not DICOM, no study to attach to
    >>> out.write(frame, seg.mask, seg.to_record(), Path("o/scan_seg.dcm"), Path("o/scan_sr.dcm"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from btseg.dicom.seg import ModelIdentity, build_seg, read_source, write_dataset
from btseg.dicom.sr import build_sr
from btseg.errors import DataError

SUFFIXES = ("_seg.dcm", "_sr.dcm")  # appended to a frame's output stem


def dicom_names(name: str) -> list[str]:
    """The SEG and SR file names of the frame named ``name``."""
    return [name + s for s in SUFFIXES]


class DicomOutputs:
    """Writes the SEG and SR of each frame; holds the model identity they name."""

    def __init__(self, model: ModelIdentity) -> None:
        self.model = model

    @staticmethod
    def check_input(path: Path, kind: str) -> None:
        """DataError unless ``kind`` (``btseg.runtime.inputs.kind_of``) is ``dicom``."""
        if kind != "dicom":
            raise DataError(f"{path}: --dicom writes a SEG and an SR into the source's DICOM study, and this "
                            f"input is a{'n' if kind[0] in 'aeiou' else ''} {kind}, not DICOM: no patient, study or "
                            "instance to attach them to (run without --dicom for PNG/JSON only)")

    def write(self, source_path: str | Path, frame: int | None, mask: np.ndarray, record: dict[str, Any],
              seg_path: Path, sr_path: Path) -> dict[str, str]:
        """Build and write (atomically) the SEG and then the SR; returns their SOP instance UIDs."""
        source = read_source(source_path)
        seg = build_seg(source, mask, self.model, frame)
        sr = build_sr(source, seg, record, self.model, frame)
        write_dataset(seg, seg_path)
        write_dataset(sr, sr_path)
        return {"seg_sop_instance_uid": str(seg.SOPInstanceUID), "sr_sop_instance_uid": str(sr.SOPInstanceUID),
                "study_instance_uid": str(source.StudyInstanceUID)}
