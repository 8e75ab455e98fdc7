"""Planning an export: every option checked, and the jobs listed, before any work starts.

:func:`plan_jobs` expands the requested targets x precisions into jobs from the targets'
specs (:data:`btseg.specs.EXPORT_TARGETS`) and rejects any combination a target cannot do
with a message that says what it *can* do; :func:`prepare` then checks the package, the
weights, the calibration and verification data and the output directory, and skips (with
``--target all``) or refuses what this machine cannot build (each target's probe).  So a
long export never dies half-way on an option it could have refused up front.

Example::

    >>> plan_jobs(["onnx", "openvino"], ["fp32", "int8"], calib_method="minmax")
    [Job(target='onnx', precision='fp32'), Job(target='onnx', precision='int8'), ...]
    >>> plan_jobs(["openvino"], ["int8"], calib_method="entropy")
    Traceback (most recent call last):
    btseg.errors.ConfigError: openvino/int8 cannot calibrate with 'entropy' ...
"""

from __future__ import annotations

import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from btseg.errors import ArtifactError, ConfigError
from btseg.export import targets as T
from btseg.export.job import Job
from btseg.machine import library_versions
from btseg.specs import CALIB_METHODS, EXPORT_TARGETS, PRECISIONS
from btseg.export.targets import DEFAULT_OPSET, MIN_OPSET


def normalize(values: Sequence[str], known: Sequence[str], what: str) -> list[str]:
    """Lower-case, expand ``all``, de-duplicate (order kept); unknown names raise ConfigError."""
    out: list[str] = []
    for v in values:
        v = str(v).strip().lower()
        names = list(known) if v == "all" else [v]
        for n in names:
            if n not in known:
                raise ConfigError(f"unknown {what} {v!r}; expected one of {', '.join(known)} or all")
            if n not in out:
                out.append(n)
    if not out:
        raise ConfigError(f"no {what} given; expected one of {', '.join(known)} or all")
    return out


def plan_jobs(targets: Sequence[str], precisions: Sequence[str], calib_method: str = "minmax",
              from_onnx: bool = False, opset: int | None = None) -> list[Job]:
    """Expand targets x precisions into jobs, rejecting what a target cannot do.

    Raises:
        ConfigError: unknown name, unsupported combination, opset below 17, or
            ``--from-onnx`` with a target that cannot build from an external ONNX.
    """
    tnames = normalize(targets, T.names(), "target")
    pnames = normalize(precisions, PRECISIONS, "precision")
    method = str(calib_method).lower()
    if method not in CALIB_METHODS:
        raise ConfigError(f"unknown calibration method {calib_method!r}; expected one of {', '.join(CALIB_METHODS)}")
    if opset is not None and int(opset) < MIN_OPSET:
        raise ConfigError(f"opset {opset}: expected >= {MIN_OPSET} (default {DEFAULT_OPSET})")
    jobs = []
    for t in tnames:
        cap = T.spec(t)
        if from_onnx and not cap.from_onnx:
            ok = ", ".join(c.name for c in EXPORT_TARGETS.values() if c.from_onnx)
            raise ConfigError(f"--from-onnx builds {ok} only; {t} exports from the package weights")
        for p in pnames:
            if p not in cap.precisions:
                raise ConfigError(f"{t}/{p} is not supported: {cap.describe()}")
            if p == "int8" and method not in cap.calib_methods:
                raise ConfigError(f"{t}/int8 cannot calibrate with {method!r} ({cap.note}): {cap.describe()}")
            jobs.append(Job(t, p))
    return jobs


# -- the plan: every option checked before any work ---------------------------------------

@dataclass
class ExportPlan:
    """Everything :func:`btseg.export.run_export` needs, validated by :func:`prepare`."""

    jobs: list[Job]
    skipped: dict[Job, str]
    src: Any  # ModelPackage the weights come from
    dest: Any  # ModelPackage the artifacts go to (``--out`` or ``src``)
    model: Any  # torch module, eval mode
    spec: Any  # PreprocessSpec with the export input size
    opset: int
    dynamic_batch: bool
    workspace_gib: float | None
    from_onnx: Path | None
    calib_method: str
    calib_images: Any  # ImageSet | None
    verify_images: Any  # ImageSet | None
    tolerances: Any  # Tolerances

    def materialize(self) -> None:
        """Create the ``--out`` package: copy ``model.json`` and ``model.safetensors``."""
        from btseg.io import atomic_path
        from btseg.package import CONFIG, WEIGHTS

        if Path(self.dest.root).resolve() == Path(self.src.root).resolve():
            return
        for name in (WEIGHTS, CONFIG):
            with atomic_path(Path(self.dest.root) / name) as tmp:
                shutil.copyfile(Path(self.src.root) / name, tmp)

    def device(self, job: Job) -> str:
        """Where ``job`` is built and verified (its target's first device)."""
        return T.spec(job.target).device

    def toolchain(self, job: Job) -> dict[str, str]:
        """Versions of what built ``job`` (its target's ``toolchain``), for the manifest."""
        return {n: v or "not installed" for n, v in library_versions(T.spec(job.target).toolchain).items()}

    def metadata(self, precision: str) -> dict[str, Any]:
        """``metadata_props`` of every ONNX file (Ultralytics-style self-describing models)."""
        cfg = self.src.config
        version = library_versions(["btseg"])["btseg"] or "not installed"
        return {"btseg_version": version, "architecture": cfg.architecture, "role": cfg.role,
                "preprocess": self.spec.to_dict(), "threshold": cfg.threshold, "postprocess": cfg.postprocess,
                "input_size": list(self.spec.size), "precision": precision, "dynamic_batch": self.dynamic_batch,
                "input_name": "image", "output_name": "logits"}


def _check_writable(path: Path) -> None:
    p = path
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ArtifactError(f"{path}: output directory is not writable ({p} is "
                            f"{'not a directory' if not p.is_dir() else 'read-only'})")


def prepare(package_dir: str | Path, targets: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
            *, options: Any = None, **kwargs: Any) -> ExportPlan:
    """Validate every option and input; nothing is written.  See :func:`run_export`.

    ``options`` is an :class:`~btseg.export.options.ExportOptions` (or give its fields as keywords).
    """
    from dataclasses import replace

    from btseg.errors import BackendUnavailableError
    from btseg.export.options import as_options
    from btseg.data.problems import SkippedFilesWarning
    from btseg.export.quantize import load_images
    from btseg.export.tensorrt import check_from_onnx, onnx_precision
    from btseg.export.verify import Tolerances
    from btseg.package import ModelPackage, load_package

    o = as_options(options, targets, precisions, **kwargs)
    targets, precisions, calib_data, calib_size, calib_method = (o.targets, o.precisions, o.calib_data,
                                                                  o.calib_size, o.calib_method)
    input_size, dynamic_batch, opset, workspace_gib, from_onnx, out = (o.input_size, o.dynamic_batch, o.opset,
                                                                       o.workspace_gib, o.from_onnx, o.out)
    verify, verify_data, verify_n, tolerances = o.verify, o.verify_data, o.verify_n, o.tolerances
    jobs = plan_jobs(targets, precisions, calib_method, from_onnx is not None, opset)
    tol = tolerances if isinstance(tolerances, Tolerances) else Tolerances().override(tolerances)
    wants_all = any(str(t).strip().lower() == "all" for t in targets)
    skipped = {}
    for j in jobs:
        reason = T.unavailable(j.target, j.precision)
        if reason and not wants_all:
            raise BackendUnavailableError(f"{j.target}/{j.precision}: {reason}; --target all would skip it")
        if reason:
            skipped[j] = reason
    src = load_package(package_dir)
    from btseg.models import model_contract

    contract = model_contract(src.config.architecture, **src.config.kwargs)
    size = contract.check_size(input_size or src.config.input_size, "--input-size")
    model = src.build_model()  # validates the weights file now, not half-way through
    spec = replace(src.config.preprocess, size=size)
    onnx_path = (check_from_onnx(Path(from_onnx), [j.precision for j in jobs], bool(dynamic_batch), size,
                                 calib_data is not None) if from_onnx is not None else None)
    live = [j for j in jobs if j not in skipped]
    calib = None
    qdq_given = onnx_path is not None and onnx_precision(onnx_path) == "int8"
    if any(j.precision == "int8" and not (j.target == "tensorrt" and qdq_given) for j in live):
        if calib_data is None:
            raise ConfigError("int8 needs calibration images: --calib-data DIR")
        calib = load_images(calib_data, int(calib_size), "calibration", skip_bad=o.skip_bad)
    vimages = None
    if verify and live:
        vdir = verify_data if verify_data is not None else calib_data
        if vdir is None:
            raise ConfigError("verification needs images: --verify-data DIR or --calib-data DIR (or --no-verify)")
        same = calib is not None and Path(vdir).resolve() == Path(calib.root).resolve()
        with warnings.catch_warnings():
            if same:  # the calibration load named the skipped items already: once is enough
                warnings.simplefilter("ignore", SkippedFilesWarning)
            vimages = load_images(vdir, int(verify_n), "verification", exclude=calib.indices if same else (),
                                  skip_bad=o.skip_bad)
        vimages.overlaps = same and bool(set(vimages.indices) & set(calib.indices))
    dest = src
    if out is not None and Path(out).resolve() != Path(src.root).resolve():
        _check_writable(Path(out))
        dest = ModelPackage(Path(out), src.config)
    else:
        _check_writable(Path(src.root))
    if workspace_gib is not None and float(workspace_gib) <= 0:
        raise ConfigError(f"--workspace {workspace_gib}: expected a positive number of GiB")
    return ExportPlan(jobs, skipped, src, dest, model, spec, int(opset or DEFAULT_OPSET), bool(dynamic_batch),
                      workspace_gib, onnx_path, str(calib_method).lower(), calib, vimages, tol)
