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
import fcntl
import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from btseg import integrity
from btseg.errors import ArtifactError, BtsegError, ConfigError, IntegrityError
from btseg.io import atomic_path, write_json
from btseg.layout import CONFIG, MANIFEST, WEIGHTS  # noqa: F401  (re-exported: package.CONFIG...)
from btseg.records import ALSO_VERIFIED, ArtifactRecord, EngineBuild, ModelConfig  # noqa: F401  (re-exported)
from btseg.schema import FORMAT_VERSION, check_manifest, check_model_json

if TYPE_CHECKING:  # torch is imported only by build_model/save_package: an ONNX/OpenVINO-only cart needs no torch
    import torch



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
