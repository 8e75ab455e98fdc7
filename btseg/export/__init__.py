"""btseg.export: a model package -> ONNX / OpenVINO / TensorRT artifacts, verified.

Example::

    >>> from btseg.export import run_export
    >>> results = run_export("runs/demo/student", ["onnx", "openvino"], ["fp32", "fp16", "int8"],
    ...                      calib_data="data/phantom", calib_size=64)     # doctest: +SKIP
    >>> [(r.target, r.precision, r.status) for r in results]              # doctest: +SKIP

See ``docs/export.md`` for the command line, the capability table and the manifest.
"""

from btseg.export.options import ExportOptions
from btseg.export.pipeline import ExportResult, results_table, run_export
from btseg.export.targets import CAPABILITIES, PRECISIONS, TARGETS, plan_jobs
from btseg.export.verify import Tolerances, VerificationResult

__all__ = ["CAPABILITIES", "ExportOptions", "ExportResult", "PRECISIONS", "TARGETS", "Tolerances", "VerificationResult",
           "plan_jobs", "results_table", "run_export"]
