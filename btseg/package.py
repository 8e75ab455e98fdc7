"""The model package: the one contract between distill, export, runtime and bench.

A package is a directory::

    model.safetensors   weights (no pickle)
    model.json          ModelConfig: architecture + kwargs, preprocessing spec, threshold,
                        output/post-processing spec, training data and metrics
    manifest.json       (after export) one ArtifactRecord per exported artifact
    <artifacts>         student-fp32.onnx, student-int8.onnx, openvino-fp16/model.xml, ...

Example::

    >>> from btseg.package import load_package
    >>> pkg = load_package("runs/demo/student")           # doctest: +SKIP
    >>> model = pkg.build_model()                          # doctest: +SKIP
    >>> pkg.artifacts()                                    # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from btseg.preprocess import PreprocessSpec
from btseg.errors import ArtifactError, BtsegError
from btseg.io import atomic_path, read_json, sha256_file, write_json

if TYPE_CHECKING:  # torch is imported only by build_model/save_package: an ONNX/OpenVINO-only cart needs no torch
    import torch

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "model.json"
MANIFEST = "manifest.json"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and use it (saved as ``model.json``)."""

    architecture: str
    kwargs: dict[str, Any]
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    threshold: float = 0.5
    output: dict[str, Any] = field(default_factory=lambda: {"name": "logits", "activation": "sigmoid", "channels": 1})
    postprocess: dict[str, Any] = field(default_factory=lambda: {"largest_component": False, "fill_holes": False})
    role: str = "student"
    preset: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: str = ""
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
    facts (TensorRT version + GPU, calibration set, the precision OpenVINO really ran).
    """

    id: str
    target: str
    precision: str
    file: str
    sha256: str
    size_bytes: int
    status: str = "ok"
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


class ModelPackage:
    """A model package directory; see the module docstring."""

    def __init__(self, root: str | Path, config: ModelConfig) -> None:
        self.root = Path(root)
        self.config = config

    # -- weights ---------------------------------------------------------------------
    def build_model(self, load_weights: bool = True) -> "torch.nn.Module":
        """Rebuild the model from ``model.json`` and load ``model.safetensors`` (eval mode)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from btseg.models import create_model

        try:
            model = create_model(self.config.architecture, **self.config.kwargs)
        except BtsegError as e:
            raise ArtifactError(f"{self.root / CONFIG}: {e}") from e
        if load_weights:
            path = self.root / WEIGHTS
            if not path.is_file():
                raise ArtifactError(f"{path}: weights file missing")
            try:
                state = load_file(str(path))
            except (SafetensorError, OSError, ValueError) as e:
                raise ArtifactError(f"{path}: not a readable safetensors file ({e})") from e
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as e:
                first = str(e).splitlines()[0]
                raise ArtifactError(f"{path}: weights do not match {self.config.architecture} ({first})") from e
        return model.eval()

    # -- manifest --------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"format_version": FORMAT_VERSION, "artifacts": []}
        return read_json(path)

    def artifacts(self) -> list[ArtifactRecord]:
        return [ArtifactRecord.from_dict(a) for a in self.manifest().get("artifacts", [])]

    def artifact(self, target: str, precision: str) -> ArtifactRecord:
        for a in self.artifacts():
            if a.target == target and a.precision == precision:
                return a
        have = ", ".join(f"{a.target}/{a.precision}" for a in self.artifacts()) or "none"
        raise ArtifactError(f"{self.root}: no {target}/{precision} artifact in {MANIFEST} (have: {have})")

    def add_artifact(self, record: ArtifactRecord) -> None:
        """Add or replace (same id) one artifact; the manifest is rewritten atomically."""
        man = self.manifest()
        arts = [a for a in man.get("artifacts", []) if a.get("id") != record.id]
        arts.append(asdict(record))
        man.update({"format_version": FORMAT_VERSION, "model": self.config.architecture,
                    "role": self.config.role, "preprocess": self.config.preprocess.to_dict(),
                    "threshold": self.config.threshold, "artifacts": arts})
        write_json(self.root / MANIFEST, man)

    def artifact_path(self, record: ArtifactRecord, check_sha: bool = True) -> Path:
        """The artifact's file, refusing one that is missing or whose sha256 disagrees."""
        path = self.root / record.file
        if not path.exists():
            raise ArtifactError(f"{path}: artifact listed in {MANIFEST} is missing")
        if check_sha:
            digest = sha256_file(path)
            if digest != record.sha256:
                raise ArtifactError(f"{path}: sha256 {digest[:12]}... does not match the manifest's "
                                    f"{record.sha256[:12]}...; the file was changed or corrupted, re-export it")
        return path


def load_package(root: str | Path, check_architecture: bool = True) -> ModelPackage:
    """Open a model package directory (validates ``model.json``; weights load lazily).

    ``check_architecture=False`` skips checking the architecture name against the model
    registry, which imports torch: the runtime passes it so that a cart running only an
    ONNX or OpenVINO artifact needs no torch (``build_model`` still checks).
    """
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(f"{root}: model package directory not found")
    raw = read_json(root / CONFIG)
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, KeyError, BtsegError) as e:
        raise ArtifactError(f"{root / CONFIG}: not a btseg model config ({e})") from e
    if check_architecture:
        from btseg.models import list_models

        if config.architecture not in list_models():
            raise ArtifactError(f"{root / CONFIG}: unknown model {config.architecture!r}; "
                                f"known: {', '.join(list_models())}")
    return ModelPackage(root, config)


def save_package(root: str | Path, model: "torch.nn.Module", config: ModelConfig) -> ModelPackage:
    """Write ``model.safetensors`` and ``model.json`` atomically into ``root``."""
    from safetensors.torch import save_file

    root = Path(root)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(root / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"architecture": config.architecture})
    write_json(root / CONFIG, config.to_dict())
    return ModelPackage(root, config)
