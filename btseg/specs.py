"""Facts about each runtime backend and each export target, in one place.

Everything else derives from :data:`BACKEND_SPECS`: the runtime's name -> module map, the CLI
choices, the bench's backend list and install hints, the plot markers and the artifact
preference per device class.  Adding a backend is one entry here plus its module
``btseg/runtime/<name>_backend.py``.  Likewise :data:`EXPORT_TARGETS`: export's planning
(:mod:`btseg.export.plan`), its builders, verification, ``btseg-export --target`` and the
targets table in docs/export.md derive from one :class:`ExportTarget` per target; adding a
target is one entry here plus its builder module (see docs/architecture.md).  This module
is at the bottom layer: it imports nothing heavy (builders and probes are named as
``"module:function"`` and imported only when used).

Example::

    >>> BACKEND_SPECS["openvino"].targets
    ('openvino', 'onnx')
    >>> backend_for_target("onnx")
    'onnxruntime'
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class BackendSpec:
    """One runtime backend.

    Attributes:
        name: the backend's name on the CLI and in bench rows.
        module, cls: where its :class:`~btseg.runtime.backend.Backend` class lives.
        package: the import name whose presence means "installed".
        pip: what to install to get it (a real extra of btseg, or a package).
        targets: artifact targets it runs, its own format first (the one export verifies on it).
        devices: device names it accepts (prefixes: ``cuda`` covers ``cuda:1``).
        marker: matplotlib marker in the bench plot.
        takes_record: its ``load`` needs the artifact's manifest record (``record=``), e.g. to
            check the engine was built by the same TensorRT/GPU.
    """

    name: str
    module: str
    cls: str
    package: str
    pip: str
    targets: tuple[str, ...]
    devices: tuple[str, ...]
    marker: str
    takes_record: bool = False

    def installed(self) -> bool:
        """Whether its Python package can be imported here (without importing it)."""
        try:
            return importlib.util.find_spec(self.package) is not None
        except (ImportError, ValueError):
            return False

    @property
    def install_hint(self) -> str:
        return f"pip install '{self.pip}'"


BACKEND_SPECS: dict[str, BackendSpec] = {s.name: s for s in (
    BackendSpec("torch", "btseg.runtime.torch_backend", "TorchBackend", "torch", "btseg[train]",
                ("torch",), ("cpu", "cuda"), "o"),
    BackendSpec("onnxruntime", "btseg.runtime.onnxruntime_backend", "OnnxRuntimeBackend", "onnxruntime", "btseg",
                ("onnx",), ("cpu", "cuda", "tensorrt"), "s"),
    BackendSpec("openvino", "btseg.runtime.openvino_backend", "OpenVINOBackend", "openvino", "btseg[openvino]",
                ("openvino", "onnx"), ("cpu", "gpu", "npu", "auto"), "^"),
    BackendSpec("tensorrt", "btseg.runtime.tensorrt_backend", "TensorRTBackend", "tensorrt", "btseg[tensorrt]",
                ("tensorrt",), ("cuda",), "D", takes_record=True),
)}
BACKEND_NAMES: tuple[str, ...] = tuple(BACKEND_SPECS)
# the numeric precisions an artifact can have (model.json's schema, export, the CLIs, the bench)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
# every artifact target some backend runs (torch = the package's own weights)
TARGET_NAMES: tuple[str, ...] = tuple(dict.fromkeys(t for s in BACKEND_SPECS.values() for t in s.targets))

# (backend, target, precision), fastest first, per device class: what ``backend="auto"`` tries
PREFERENCE: dict[str, list[tuple[str, str, str]]] = {
    "cuda": [("tensorrt", "tensorrt", "fp16"), ("tensorrt", "tensorrt", "int8"), ("tensorrt", "tensorrt", "fp32"),
             ("onnxruntime", "onnx", "fp16"), ("onnxruntime", "onnx", "fp32")],
    "cpu": [("openvino", "openvino", "int8"), ("openvino", "openvino", "fp16"), ("openvino", "openvino", "fp32"),
            ("onnxruntime", "onnx", "int8"), ("onnxruntime", "onnx", "fp32"), ("openvino", "onnx", "fp32")],
    "openvino": [("openvino", "openvino", "int8"), ("openvino", "openvino", "fp16"),
                 ("openvino", "openvino", "fp32"), ("openvino", "onnx", "fp32")],
}
# targets outside PREFERENCE still run, after it, on this backend
FALLBACK: dict[str, dict[str, str]] = {"cuda": {"tensorrt": "tensorrt", "onnx": "onnxruntime"},
                                       "cpu": {"onnx": "onnxruntime", "openvino": "openvino"},
                                       "openvino": {"openvino": "openvino", "onnx": "openvino"}}


def backend_for_target(target: str) -> str:
    """The backend whose own format ``target`` is (where export verifies an artifact)."""
    if target in EXPORT_TARGETS:
        return EXPORT_TARGETS[target].verified_by[0]
    for s in BACKEND_SPECS.values():
        if s.targets[0] == target:
            return s.name
    raise KeyError(target)


# INT8 calibration methods btseg knows; a target accepts a subset (ExportTarget.calib_methods)
CALIB_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
# what every target's build goes through (the FP32 ONNX export): recorded in each manifest record
ONNX_TOOLCHAIN: tuple[str, ...] = ("btseg", "torch", "onnx", "onnxruntime", "onnxslim")


@dataclass(frozen=True)
class ExportTarget:
    """One export target: everything planning, building, verification and the CLI need.

    Attributes:
        name: the target on the CLI, in ``manifest.json`` and in BackendSpec.targets.
        formats: what it writes (file suffixes), for the docs table and ``--help``.
        precisions: the precisions it builds (a subset of :data:`PRECISIONS`).
        calib_methods: INT8 calibration methods it accepts (a subset of :data:`CALIB_METHODS`).
        builder: ``"module:function"`` (or a callable) ``build_artifact(builder, job) -> Built``: see
            :class:`btseg.export.pipeline.Builder` for what it is given.
        probe: ``"module:function"`` (or a callable) ``probe(precision) -> str | None``: why
            this machine cannot build ``precision`` (a missing package or device), None if it can.
        verified_by: runtime backends that run its artifacts, the gating one first (its own
            format); the others are verified too and recorded, not gating.
        devices: where it is built and verified, the first used by export.
        toolchain: distributions whose versions the manifest records for its artifacts.
        from_onnx: can build from an ONNX exported elsewhere (``--from-onnx``).
        describe_toolchain, note: for the docs table and refusal messages.
    """

    name: str
    formats: tuple[str, ...]
    precisions: tuple[str, ...]
    calib_methods: tuple[str, ...]
    builder: str | Callable[..., Any]
    probe: str | Callable[[str], str | None]
    verified_by: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    toolchain: tuple[str, ...] = ONNX_TOOLCHAIN
    from_onnx: bool = False
    describe_toolchain: str = ""
    note: str = ""

    @property
    def device(self) -> str:
        """The device export builds and verifies on."""
        return self.devices[0]

    def describe(self) -> str:
        """What it can do, one line (used in refusals)."""
        return (f"{self.name} can do {', '.join(self.precisions)}; INT8 calibration: "
                f"{', '.join(self.calib_methods)}" + ("; builds from --from-onnx" if self.from_onnx else ""))


EXPORT_TARGETS: dict[str, ExportTarget] = {t.name: t for t in (
    ExportTarget("onnx", (".onnx",), PRECISIONS, CALIB_METHODS, "btseg.export.onnx:build_artifact",
                 "btseg.export.onnx:probe", ("onnxruntime", "openvino"),
                 describe_toolchain="torch.onnx + onnxslim + onnxruntime.quantization",
                 note="INT8 is an explicit Q/DQ graph (per-channel weights, symmetric activations)"),
    ExportTarget("openvino", (".xml", ".bin"), PRECISIONS, ("minmax", "percentile"),
                 "btseg.export.openvino:build_artifact", "btseg.export.openvino:probe", ("openvino",),
                 toolchain=ONNX_TOOLCHAIN + ("openvino", "nncf"),
                 describe_toolchain="openvino + nncf", note="nncf has no entropy (KL) range estimator"),
    ExportTarget("tensorrt", (".engine",), PRECISIONS, CALIB_METHODS, "btseg.export.tensorrt:build_artifact",
                 "btseg.export.tensorrt:probe", ("tensorrt",), devices=("cuda",),
                 toolchain=ONNX_TOOLCHAIN + ("tensorrt", "cuda-bindings"), from_onnx=True,
                 describe_toolchain="tensorrt >= 10 + cuda-bindings",
                 note="strongly typed: FP16 from the FP16 ONNX, INT8 from a TensorRT Q/DQ ONNX "
                      "(symmetric, no INT32 bias, FP32 logits); no TensorRT calibrator"),
)}


def export_target(name: str) -> ExportTarget:
    """The spec of export target ``name``; KeyError for an unknown one (planning refuses first)."""
    return EXPORT_TARGETS[name]


def installed_backends() -> list[str]:
    """The backends whose Python package is installed here, in :data:`BACKEND_NAMES` order."""
    return [n for n, s in BACKEND_SPECS.items() if s.installed()]
