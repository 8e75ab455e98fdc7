"""The package's two documents as typed records: :class:`ModelConfig` (``model.json``) and
:class:`ArtifactRecord` (one entry of ``manifest.json``), with :data:`FORMAT_VERSION`.

Below both :mod:`btseg.schema` (which takes the keys it allows from these dataclasses, so
it cannot drift from the writer) and :mod:`btseg.package` (which reads and writes them
through the schema and the integrity chain; it re-exports them), so neither imports the
other.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any

from btseg.contract import DEFAULT_THRESHOLD, default_postprocess
from btseg.preprocess import PreprocessSpec

FORMAT_VERSION = 2


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and use it (saved as ``model.json``)."""

    architecture: str
    kwargs: dict[str, Any]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    threshold: float = DEFAULT_THRESHOLD
    output: dict[str, Any] = field(default_factory=lambda: {"name": "logits", "activation": "sigmoid", "channels": 1})
    postprocess: dict[str, Any] = field(default_factory=default_postprocess)
    role: str = "student"
    preset: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
    weights_sha256: str = ""  # filled by save_package
    weights_size: int = 0
    format_version: int = FORMAT_VERSION

    @property
    def input_size(self) -> tuple[int, int]:
        return self.preprocess.size

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["preprocess"] = PreprocessSpec.from_dict(d.get("preprocess", {}))
        return cls(**d)


@dataclass
class ArtifactRecord:
    """One exported artifact, as listed in ``manifest.json``.

    ``status`` is ``"ok"`` or ``"failed"``; ``verification`` holds the numbers against
    PyTorch (``status`` passed/failed/skipped, max/mean abs diff of probabilities, Dice
    vs PyTorch masks and vs ground truth, thresholds).  ``extra`` carries target-specific
    facts (calibration set, the precision OpenVINO really ran).  What other layers read
    from it goes through typed accessors, validated by :func:`btseg.schema.check_artifact`:
    :attr:`also_verified` / :meth:`failed_on` / :meth:`failure_on` (export's verification on
    the target's other backends) and :attr:`engine_build` (what a TensorRT engine is tied to).
    """

    id: str
    target: str
    precision: str
    file: str
    sha256: str
    size_bytes: int
    status: str = "ok"
    weights_sha256: str = ""  # sha256 of the model.safetensors it was exported from
    files: list[dict[str, Any]] = field(default_factory=list)  # every file: {file, sha256, size_bytes}
    toolchain: dict[str, str] = field(default_factory=dict)
    opset: int | None = None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    preprocess: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    export_seconds: float | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtifactRecord":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def also_verified(self) -> dict[str, dict[str, Any]]:
        """Export's verification of this artifact on its target's other backends (e.g. ONNX on
        OpenVINO): backend -> that backend's verification result (``status``, ``failures``...)."""
        return dict((self.extra or {}).get(ALSO_VERIFIED) or {})

    @also_verified.setter
    def also_verified(self, results: dict[str, dict[str, Any]]) -> None:
        self.extra = {**(self.extra or {}), ALSO_VERIFIED: dict(results)}

    def failed_on(self, backend: str) -> bool:
        """Export verified this artifact on ``backend`` too, and it failed there."""
        return self.also_verified.get(backend, {}).get("status") == "failed"

    def failure_on(self, backend: str) -> str:
        """The first reason it failed on ``backend`` ("" when it did not, or none was given)."""
        return ((self.also_verified.get(backend) or {}).get("failures") or [""])[0]

    @property
    def engine_build(self) -> "EngineBuild":
        """What the engine was built with (TensorRT artifacts; all None for the others)."""
        return EngineBuild.from_extra(self.extra)


ALSO_VERIFIED = "also_verified"  # the one key of ArtifactRecord.extra other layers read


@dataclass(frozen=True)
class EngineBuild:
    """What a TensorRT engine is tied to: TensorRT version, GPU name, compute capability
    (``extra.tensorrt``, ``extra.gpu``, ``extra.compute_capability`` as export writes them)."""

    tensorrt: str | None = None
    gpu: str | None = None
    compute_capability: str | None = None

    @classmethod
    def from_extra(cls, extra: dict[str, Any] | None) -> "EngineBuild":
        e = extra or {}
        keys = ("tensorrt", "gpu", "compute_capability")
        return cls(*(str(e[k]) if e.get(k) not in (None, "") else None for k in keys))
