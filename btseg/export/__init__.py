"""btseg.export: a model package -> ONNX / OpenVINO / TensorRT artifacts, verified.

Example::

    >>> from btseg.export import run_export
    >>> results = run_export("runs/demo/student", ["onnx", "openvino"], ["fp32", "fp16", "int8"],
    ...                      calib_data="data/phantom", calib_size=64)     # doctest: +SKIP
    >>> [(r.target, r.precision, r.status) for r in results]              # doctest: +SKIP

See ``docs/export.md`` for the command line, the targets table and the manifest.
"""

from btseg.export.options import ExportOptions
from btseg.export.pipeline import ExportResult, run_export
from btseg.export.plan import plan_jobs
from btseg.export.targets import TARGETS
from btseg.export.verify import Tolerances, VerificationResult
from btseg.specs import EXPORT_TARGETS, PRECISIONS, ExportTarget

__all__ = ["EXPORT_TARGETS", "ExportOptions", "ExportResult", "ExportTarget", "PRECISIONS", "TARGETS", "Tolerances",
           "VerificationResult", "plan_jobs", "run_export"]
