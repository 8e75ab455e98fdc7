"""Facts about each runtime backend, in one place.

Everything else derives from :data:`BACKEND_SPECS`: the runtime's name -> module map, the CLI
choices, the bench's backend list and install hints, the verify map (target -> the backend
that verifies it), the plot markers and the artifact preference per device class.  Adding a
backend is one entry here plus its module ``btseg/runtime/<name>_backend.py`` (see
docs/architecture.md).  This module is at the bottom layer: it imports nothing heavy.

Example::

    >>> BACKEND_SPECS["openvino"].targets
    ('openvino', 'onnx')
    >>> backend_for_target("onnx")
    'onnxruntime'
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


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
        takes_record: its ``load`` needs the artifact's manifest record (``extra=``), e.g. to
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
    for s in BACKEND_SPECS.values():
        if s.targets[0] == target:
            return s.name
    raise KeyError(target)


def installed_backends() -> list[str]:
    """The backends whose Python package is installed here, in :data:`BACKEND_NAMES` order."""
    return [n for n, s in BACKEND_SPECS.items() if s.installed()]
