"""The model package: the one contract between distill, export, runtime and bench.

A package is a directory::

    model.safetensors   weights (no pickle)
    model.json          ModelConfig: architecture + kwargs, preprocessing spec, threshold,
                        output/post-processing spec, training data and metrics
    manifest.json       (after export) one ArtifactRecord per exported artifact
    <artifacts>         student-fp32.onnx, student-int8.onnx, openvino-fp16/model.xml, ...

Both JSON documents are validated on load (:mod:`btseg.schema`) and every file is read
through the integrity chain (:mod:`btseg.integrity`): ``model.json`` records the weights'
sha256, each artifact the weights sha256 it was exported from and the sha256 of every file
it consists of.  :meth:`ModelPackage.build_model` and :meth:`ModelPackage.verify_artifact`
refuse any mismatch with :class:`~btseg.errors.IntegrityError`.  Writers hold
:func:`package_lock`.

Example::

    >>> from btseg.package import load_package
    >>> pkg = load_package("runs/demo/student")           # doctest: +SKIP
    >>> model = pkg.build_model()                          # doctest: +SKIP
    >>> pkg.artifacts()                                    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from btseg import integrity
from btseg.errors import ArtifactError, BtsegError, ConfigError, IntegrityError
from btseg.io import atomic_path, write_json
from btseg.layout import CONFIG, MANIFEST, WEIGHTS  # noqa: F401  (re-exported: package.CONFIG...)
from btseg.contract import DEFAULT_THRESHOLD, default_postprocess
from btseg.preprocess import PreprocessSpec
from btseg.schema import FORMAT_VERSION, check_manifest, check_model_json

if TYPE_CHECKING:  # torch is imported only by build_model/save_package: an ONNX/OpenVINO-only cart needs no torch
    import torch



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


class ModelPackage:
    """A model package directory; see the module docstring."""

    def __init__(self, root: str | Path, config: ModelConfig) -> None:
        self.root = Path(root)
        self.config = config

    # -- weights ---------------------------------------------------------------------
    def weights_bytes(self) -> bytes:
        """``model.safetensors``, read once and checked against ``model.json``'s sha256."""
        cfg = self.config
        data = integrity.read_bytes(self.root, WEIGHTS, max(cfg.weights_size, 0))
        sha = hashlib.sha256(data).hexdigest()
        if len(data) != cfg.weights_size or sha != cfg.weights_sha256:
            raise IntegrityError(f"{self.root / WEIGHTS}: sha256 {sha[:12]}... ({len(data)} bytes) does not match "
                                 f"{CONFIG}'s weights_sha256 {cfg.weights_sha256[:12]}... ({cfg.weights_size} "
                                 "bytes); the weights were changed or corrupted")
        return data

    def build_model(self, load_weights: bool = True) -> "torch.nn.Module":
        """Rebuild the model from ``model.json`` and load ``model.safetensors`` (eval mode);
        the weights are verified against ``model.json``'s sha256 first."""
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        from btseg.models import create_model

        data = self.weights_bytes() if load_weights else b""  # before allocating the model
        try:
            model = create_model(self.config.architecture, **self.config.kwargs)
        except BtsegError as e:
            raise ArtifactError(f"{self.root / CONFIG}: {e}") from e
        if load_weights:
            path = self.root / WEIGHTS
            try:
                state = load_safetensors(data)
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
        """``manifest.json``, validated against ``model.json`` (empty when absent)."""
        if not os.path.lexists(self.root / MANIFEST):
            return {"format_version": FORMAT_VERSION, "artifacts": []}
        doc = integrity.read_json(self.root, MANIFEST)
        return check_manifest(doc, str(self.root / MANIFEST), self.config.to_dict())

    def artifacts(self) -> list[ArtifactRecord]:
        return [ArtifactRecord.from_dict(a) for a in self.manifest()["artifacts"]]

    def artifact(self, target: str, precision: str) -> ArtifactRecord:
        for a in self.artifacts():
            if a.target == target and a.precision == precision:
                return a
        have = ", ".join(f"{a.target}/{a.precision}" for a in self.artifacts()) or "none"
        raise ArtifactError(f"{self.root}: no {target}/{precision} artifact in {MANIFEST} (have: {have})")

    def write_config(self) -> None:
        """Write :attr:`config` to ``model.json``, schema-checked first: never write what
        :func:`load_package` would refuse."""
        doc = self.config.to_dict()
        check_model_json(doc, str(self.root / CONFIG))
        write_json(self.root / CONFIG, doc)

    def write_manifest(self, records: list[ArtifactRecord]) -> None:
        """Rewrite ``manifest.json`` atomically with exactly ``records`` (hold :func:`package_lock`)."""
        man = {"format_version": FORMAT_VERSION, "model": self.config.architecture, "role": self.config.role,
               "preprocess": self.config.preprocess.to_dict(), "threshold": self.config.threshold,
               "artifacts": [asdict(r) for r in records]}
        check_manifest(man, str(self.root / MANIFEST), self.config.to_dict())  # never write what we would refuse
        write_json(self.root / MANIFEST, man)

    def add_artifact(self, record: ArtifactRecord) -> None:
        """Add or replace (same id) one artifact; the manifest is rewritten atomically."""
        self.write_manifest([a for a in self.artifacts() if a.id != record.id] + [record])

    def verify_artifact(self, record: ArtifactRecord) -> Path:
        """Check every file of ``record`` (confined, regular, size, sha256) and its binding to
        this package's weights; returns the file a backend loads.  IntegrityError otherwise."""
        integrity.check_artifact_files(self.root, record, self.config.weights_sha256)
        return self.root / record.file

    def artifact_path(self, record: ArtifactRecord, check_sha: bool = True) -> Path:
        """The artifact's main file; with ``check_sha`` (default) after :meth:`verify_artifact`."""
        return self.verify_artifact(record) if check_sha else self.root / record.file


def load_package(root: str | Path, check_architecture: bool = True) -> ModelPackage:
    """Open a model package directory; ``model.json`` is validated (:mod:`btseg.schema`).

    ``check_architecture=False`` skips checking the architecture name against the model
    registry, which imports torch: the runtime passes it so that a cart running only an
    ONNX or OpenVINO artifact needs no torch (``build_model`` still checks).
    """
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(f"{root}: model package directory not found")
    raw = check_model_json(integrity.read_json(root, CONFIG), str(root / CONFIG))
    try:
        config = ModelConfig.from_dict(raw)
    except (TypeError, KeyError, ValueError, BtsegError) as e:
        raise ArtifactError(f"{root / CONFIG}: not a btseg model config ({e})") from e
    if check_architecture:
        from btseg.models import list_models

        if config.architecture not in list_models():
            raise ArtifactError(f"{root / CONFIG}: unknown model {config.architecture!r}; "
                                f"known: {', '.join(list_models())}")
    return ModelPackage(root, config)


def save_package(root: str | Path, model: "torch.nn.Module", config: ModelConfig) -> ModelPackage:
    """Write ``model.safetensors`` and ``model.json`` (with the weights' sha256) atomically."""
    from safetensors.torch import save_file

    root = Path(root)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(root / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"architecture": config.architecture})
        config.weights_sha256, config.weights_size = integrity.hash_file(tmp.parent, tmp.name)
    config.format_version = FORMAT_VERSION
    pkg = ModelPackage(root, config)
    pkg.write_config()
    return pkg


@contextlib.contextmanager
def package_lock(root: str | Path) -> Iterator[None]:
    """Exclusive writer lock on a package: ``fcntl.flock`` on the package directory itself.

    Held by export for its whole run; readers need no lock (every file is replaced by an
    atomic rename and checked against its hash).  Locking the directory, not a lock file,
    leaves nothing behind in the package and has no unlink race."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise ConfigError(f"{root}: cannot lock the package for writing ({e.strerror})") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
