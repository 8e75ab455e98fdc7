"""``run_export``: validate everything, build each artifact, verify it, add it to the package.

Order of work (each step only after the one before succeeded):

1. :func:`btseg.export.plan.prepare` checks every option (against the targets' specs,
   :data:`btseg.specs.EXPORT_TARGETS`), the package, the weights, the calibration and
   verification data and the output directory; any problem is one typed error before a
   single artifact is written.
2. The destination package is locked for writers (:func:`btseg.package.package_lock`,
   held for the whole run: two exports into one package run one after the other and
   neither loses a manifest entry).  Under the lock: leftovers of killed runs
   (``.export-staging-*``) are removed; ``--out`` gets the weights and ``model.json``;
   artifacts exported from *other* weights are removed from the manifest and the disk
   (``btseg-export A --out B`` never leaves B's old artifacts usable).
3. In a hidden staging directory inside the destination package, each job builds its
   artifact with its target's builder (ONNX intermediates are built once and shared), is
   verified through the runtime on the target's ``verified_by`` backends, then installed
   by :func:`_install` as one transaction: the artifact is put in place (modes 0755 / 0644),
   every file it consists of is hashed into its record, bound to the weights' sha256, and ``manifest.json`` is rewritten; if any step fails the new
   files are removed and the previous version of that artifact is put back.  A job that
   fails is recorded in the results and the run goes on to the next one; the staging
   directory is always removed (on SIGTERM/SIGINT the CLI's handler removes it and exits
   at once, holding the signal during an install step: :mod:`btseg.export.interrupt`).
   ``OSError`` (disk full, ``ulimit -f``, permissions) becomes a typed error.
4. If any job failed (a failed verification counts unless ``verify_gate=False``), one
   typed error is raised at the end carrying ``.results`` for the CLI's table.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from btseg import integrity
from btseg.errors import ArtifactError, BtsegError, VerificationError
from btseg.export import interrupt
from btseg.export import install as I
from btseg.export import onnx as O
from btseg.export import verify as V
from btseg.export.options import ExportOptions, as_options
from btseg.export import targets as T
from btseg.export.job import Built, Job
from btseg.export.plan import ExportPlan, prepare
from btseg.export.tensorrt import TENSORRT_INT8
from btseg.io import sha256_file
from btseg.package import ArtifactRecord, package_lock


class Builder:
    """Builds each job's artifact in ``staging`` with its target's builder function.

    A builder (``ExportTarget.builder``) is called as ``build_artifact(builder, job) -> Built`` and
    may use ``builder.plan`` (the :class:`~btseg.export.plan.ExportPlan`: spec, calibration
    images, options), ``builder.staging`` (where to write) and ``builder.onnx_file(precision)``
    (the staged ONNX of a precision, built once and shared by every target).
    """

    def __init__(self, plan: ExportPlan, staging: Path) -> None:
        self.plan, self.staging = plan, staging
        self._cache: dict[str, tuple[Path, dict[str, Any]]] = {}

    def onnx_file(self, precision: str) -> tuple[Path, dict[str, Any]]:
        """The staged ONNX of ``precision`` and how it was made (memoised)."""
        if precision in self._cache:
            return self._cache[precision]
        p, dst = self.plan, self.staging / f"{precision}.onnx"
        # --from-onnx: the file is the FP32 graph, or the Q/DQ graph when it is one
        if p.from_onnx is not None and (precision == "fp32" or
                                        (precision in ("int8", TENSORRT_INT8) and O.has_qdq(p.from_onnx))):
            info = {"from_onnx": str(p.from_onnx), "from_onnx_sha256": sha256_file(p.from_onnx)}
            dst = p.from_onnx
        elif precision == "fp32":
            info = O.export_onnx(p.model, p.spec.size, dst, p.metadata("fp32"), p.opset, p.dynamic_batch)
        elif precision == "fp16":
            info = O.to_fp16(self.onnx_file("fp32")[0], dst, p.metadata("fp16"))
        elif precision == TENSORRT_INT8:
            from btseg.export.quantize import quantize_onnx_tensorrt

            info = quantize_onnx_tensorrt(self.onnx_file("fp32")[0], dst, p.calib_images.inputs(p.spec),
                                          p.calib_method, p.metadata("int8"))
            info["calibration"] = p.calib_images.describe()
        else:
            from btseg.export.quantize import quantize_onnx

            info = quantize_onnx(self.onnx_file("fp32")[0], dst, p.calib_images.inputs(p.spec), p.calib_method,
                                 p.metadata("int8"))
            info["calibration"] = p.calib_images.describe()
        self._cache[precision] = (dst, info)
        return dst, info

    def build(self, job: Job) -> Built:
        """Build ``job`` with its target's builder (:data:`btseg.specs.EXPORT_TARGETS`)."""
        return T.resolve(T.spec(job.target).builder)(self, job)


@dataclass
class ExportResult:
    """One job's outcome: ``status`` is ``ok``, ``failed`` or ``skipped`` (with ``reason``)."""

    target: str
    precision: str
    status: str
    reason: str = ""
    file: str | None = None
    size_bytes: int | None = None
    export_seconds: float | None = None
    verification: dict[str, Any] = field(default_factory=dict)
    error: BtsegError | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.status if self.status == "ok" else f"{self.status}: {self.reason}"

    @property
    def counts_as_failure(self) -> bool:
        return self.status == "failed"


def run_export(package_dir: str | Path, targets: Sequence[str] | None = None, precisions: Sequence[str] | None = None,
               *, options: ExportOptions | None = None, **kwargs: Any) -> list[ExportResult]:
    """Export a model package to the requested targets x precisions.

    Takes an :class:`~btseg.export.options.ExportOptions`, or the same fields as keywords.

    Example::

        >>> run_export("runs/demo/student", options=ExportOptions(
        ...     targets=("onnx", "openvino"), precisions=("fp32", "int8"), calib_data="data/phantom"))  # doctest: +SKIP
        >>> run_export("runs/demo/student", ["onnx"], ["int8"], calib_data="data/phantom")  # doctest: +SKIP

    Returns one :class:`ExportResult` per job (skipped ones included).

    Raises:
        ConfigError / ArtifactError / DataError / BackendUnavailableError: bad input, before
            any work (nothing written).
        VerificationError: an artifact failed verification (it is kept, marked ``failed``
            in the manifest) and ``verify_gate`` is on.
        BtsegError: the first other failure, after every job ran; ``.results`` holds them all.
    """
    opts = as_options(options, targets, precisions, **kwargs)
    I.refuse_installed_assets(Path(opts.out if opts.out is not None else package_dir))  # before any work
    plan = prepare(package_dir, options=opts)
    verify_gate = opts.verify_gate
    root = Path(plan.dest.root)
    results: list[ExportResult] = []
    with package_lock(root):
        I.clean_stale(root)
        with interrupt.critical():  # a signal waits until these steps are whole (btseg.export.interrupt)
            I.disk_step(root, plan.materialize)
            I.disk_step(root, lambda: I.prune_foreign(plan.dest))
        staging = root / f"{I.STAGING}{os.getpid()}-{int(time.time())}"
        with interrupt.staging(staging):  # a signal removes it and ends the process
            try:
                I.disk_step(root, staging.mkdir)
                vset = _verify_set(plan)
                builder = Builder(plan, staging)
                for job in plan.jobs:
                    if job in plan.skipped:
                        results.append(ExportResult(job.target, job.precision, "skipped", plan.skipped[job]))
                        continue
                    results.append(_one(plan, builder, job, vset, verify_gate))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    _raise_if_failed(results)
    return results


def _verify_set(plan: ExportPlan) -> V.VerifySet | None:
    if plan.verify_images is None:
        return None
    cfg = plan.dest.config
    return V.build_verify_set(plan.dest.root, plan.verify_images, plan.spec, cfg)


def _one(plan: ExportPlan, builder: Builder, job: Job, vset: V.VerifySet | None, gate: bool) -> ExportResult:
    try:
        t0 = time.perf_counter()
        built = builder.build(job)
        seconds = time.perf_counter() - t0
        if vset is not None:
            t1 = time.perf_counter()
            vr = V.verify_artifact(job.target, job.precision, built.staged, vset, plan.tolerances, plan.device(job))
            also = _also_verify(job, built.staged, vset, plan)
            built.extra["verify_seconds"] = round(time.perf_counter() - t1, 3)
        else:
            vr, also = V.VerificationResult(status="skipped", reason="--no-verify"), None
        record = _install(plan, builder, job, built, vr, seconds, also)
    except OSError as e:  # disk full, ulimit -f (EFBIG), permissions: one line, the run goes on
        err = ArtifactError(f"{e.filename or plan.dest.root}: cannot write ({e.strerror or e})")
        return ExportResult(job.target, job.precision, "failed", str(err), error=err)
    except BtsegError as e:
        return ExportResult(job.target, job.precision, "failed", str(e), error=e)
    res = ExportResult(job.target, job.precision, "ok", file=record.file, size_bytes=record.size_bytes,
                       export_seconds=record.export_seconds, verification=record.verification)
    if not vr.passed:
        res.status, res.reason = ("failed" if gate else "ok"), "verification: " + "; ".join(vr.failures)
        res.error = vr.error(record.file) if gate else None
        if not gate:
            res.status = "failed (not gated)"
    return res


def _also_verify(job: Job, artifact: Path, vset: V.VerifySet, plan: ExportPlan) -> dict[str, Any]:
    """Verify on the other installed backends that can run this target (e.g. ONNX on
    OpenVINO): recorded per backend (:attr:`ArtifactRecord.also_verified`); the runtime and the bench
    refuse that backend for this artifact where it failed.  It does not gate the export."""
    out: dict[str, Any] = {}
    for name in V.also_runs_on(job.target):
        if importlib.util.find_spec(name) is None:
            continue
        try:
            r = V.verify_artifact(job.target, job.precision, artifact, vset, plan.tolerances, plan.device(job), name)
            out[name] = {k: v for k, v in r.to_dict().items() if k != "backend"}
        except BtsegError as e:
            out[name] = {"status": "failed", "failures": [str(e)]}
    return out


def _install(plan: ExportPlan, builder: Builder, job: Job, built: Built, vr: V.VerificationResult,
             seconds: float, also: dict[str, Any] | None) -> ArtifactRecord:
    """Install the staged artifact and its manifest record as one step (module docstring)."""
    with interrupt.critical():  # a signal waits for the install or its rollback (btseg.export.interrupt)
        return _install_step(plan, builder, job, built, vr, seconds, also)


def _install_step(plan: ExportPlan, builder: Builder, job: Job, built: Built, vr: V.VerificationResult,
                  seconds: float, also: dict[str, Any] | None) -> ArtifactRecord:
    root = Path(plan.dest.root)
    final = root / built.name
    old = I.put_in_place(built, final, builder.staging)
    try:
        rels = ([built.name] if final.is_file() else
                sorted(str(p.relative_to(root)) for p in final.rglob("*") if p.is_file()))
        main = built.name if final.is_file() else f"{built.name}/{built.main}"
        files = integrity.record_files(root, rels)
        integrity.check_listed(root, main, rels, f"{job.target}/{job.precision}")  # every file a backend opens
        if vr.backend:
            vr.backend["artifact"] = main  # not the staging path it ran from
        record = ArtifactRecord(
            id=job.id, target=job.target, precision=job.precision, file=main,
            sha256=next(f["sha256"] for f in files if f["file"] == main),
            size_bytes=sum(f["size_bytes"] for f in files), status="ok" if vr.passed else "failed",
            weights_sha256=plan.dest.config.weights_sha256, files=files, toolchain=plan.toolchain(job),
            opset=built.opset, inputs=built.inputs, outputs=built.outputs, preprocess=plan.spec.to_dict(),
            verification=vr.to_dict(), extra=dict(built.extra), export_seconds=round(seconds, 3))
        if also is not None:
            record.also_verified = also
        plan.dest.add_artifact(record)
    except BaseException:
        I.remove_tree(final)
        if old is not None:
            os.replace(old, final)
        raise
    return record


def _raise_if_failed(results: list[ExportResult]) -> None:
    failed = [r for r in results if r.counts_as_failure]
    if not failed:
        return
    errors = [r.error for r in failed if r.error is not None]
    if all(isinstance(e, VerificationError) for e in errors):
        err: BtsegError = VerificationError("; ".join(str(e) for e in errors))
    else:
        first = next(r for r in failed if not isinstance(r.error, VerificationError))
        more = f" (and {len(failed) - 1} more failed job(s))" if len(failed) > 1 else ""
        err = type(first.error)(f"{first.target}/{first.precision}: {first.reason}{more}")
    err.results = results  # type: ignore[attr-defined]
    raise err
