"""The runtime API: a model package + one backend -> :class:`Segmentation` per image.

Pipeline per frame: :func:`btseg.preprocess.preprocess` (THE preprocessing, the
package's spec) -> ``backend.infer`` -> :func:`btseg.runtime.postprocess.postprocess`
(sigmoid, resize back, threshold, optional clean-up, measurements).

Artifact choice (``backend="auto"``): artifacts with ``status == "failed"`` or a failed
verification are never used; verified (``passed``) ones come before unverified ones; within
each group the order is :data:`PREFERENCE` for the device class (fastest first).  The first
one whose backend is installed and can run on ``device`` is loaded; if none can, the
package weights run on the torch backend.

Integrity (:mod:`btseg.integrity`): the artifact about to be loaded is checked file by
file (sha256 and size of every file, confined to the package) and must be bound to the
package's weights.  A refused artifact never falls back to another one, neither for an
explicit choice nor in ``auto``: a file that differs from its record means the package is
not the one that was verified and released, and a cart must stop and say so
(:class:`~btseg.errors.IntegrityError`, exit 2) rather than quietly run something else.
Only artifacts that are *honestly* unusable (manifest status ``failed``, failed
verification, backend not installed) are skipped in ``auto``; those are listed in
``info()["skipped"]``.

Thread safety: a Segmenter is safe to share between threads.  ``segment`` keeps no state
on the Segmenter; the backends guard their own (onnxruntime sessions are thread-safe,
OpenVINO keeps one InferRequest per thread, torch eager forward is re-entrant, TensorRT
and compiled torch serialise with a lock).

Example::

    >>> seg = Segmenter.load("runs/demo/student", threads=2)   # doctest: +SKIP
    >>> out = seg.segment(image, spacing_mm=0.1)               # doctest: +SKIP
    >>> out.area_mm2, out.bbox, out.timings["total_ms"]        # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from btseg.preprocess import PreprocessSpec, preprocess
from btseg.errors import ArtifactError, BackendUnavailableError, ConfigError, DataError
from btseg.package import ArtifactRecord, ModelPackage, load_package
from btseg.runtime.backend import BACKENDS, Backend, load_backend
from btseg.runtime.inputs import Frame, check_image
from btseg.runtime.postprocess import PostProcess, Segmentation
from btseg.runtime.regions import segment_where
from btseg.runtime.select import SELECT_MODES
from btseg.specs import FALLBACK, PREFERENCE

def device_class(device: str) -> str:
    """``cuda[:N]`` -> cuda; ``gpu``/``npu``/``auto`` (OpenVINO devices) -> openvino; else cpu."""
    d = device.lower()
    if d.startswith("cuda") or d.startswith("tensorrt"):
        return "cuda"
    return "openvino" if d.split(".")[0] in ("gpu", "npu", "auto") else "cpu"


def _verified(rec: ArtifactRecord) -> str:
    return str((rec.verification or {}).get("status", "unverified")).lower()


def verified_options(rec: ArtifactRecord, backend: str) -> dict[str, Any]:
    """The backend options the artifact was verified with (e.g. OpenVINO ``precision_hint``),
    so that by default the runtime runs exactly what export verification measured."""
    ver = (rec.verification or {}).get("backend") or {}
    return dict(ver.get("options") or {}) if ver.get("backend") == backend else {}


def _usable(rec: ArtifactRecord) -> str | None:
    """Why ``rec`` must not run, or None."""
    if rec.status != "ok":
        return f"{rec.target}/{rec.precision} has status {rec.status!r} in the manifest"
    if _verified(rec) == "failed":
        return f"{rec.target}/{rec.precision} failed verification against PyTorch"
    return None


class Segmenter:
    """Segment ultrasound images with one artifact of a model package.

    Use :meth:`load`; then :meth:`segment`, :meth:`segment_batch`, :meth:`stream`, :meth:`info`.
    """

    def __init__(self, package: ModelPackage, backend: Backend, record: ArtifactRecord | None,
                 tried: list[str] | None = None) -> None:
        self.package = package
        self.backend = backend
        self.record = record
        # an artifact exported at another --input-size carries its own spec in the manifest
        self.spec = (PreprocessSpec.from_dict(record.preprocess) if record is not None and record.preprocess
                     else package.config.preprocess)
        self.post = PostProcess.of(package.config)
        self.threshold = self.post.threshold
        self._tried = tried or []
        self.selection: dict[str, Any] = {"mode": "preference"}  # select="fastest" fills in its measurement

    @classmethod
    def load(cls, package_dir: str | Path, target: str | None = None, precision: str | None = None,
             backend: str = "auto", device: str = "cpu", threads: int | None = None,
             select: str = "preference", **options: Any) -> "Segmenter":
        """Open ``package_dir`` and load the chosen artifact.

        Args:
            target, precision: restrict the artifact (``onnx``/``openvino``/``tensorrt``;
                ``fp32``/``fp16``/``int8``).
            backend: ``auto``, ``torch`` (package weights, no artifact), ``onnxruntime``,
                ``openvino`` or ``tensorrt``.
            device: ``cpu``, ``cuda[:N]``, or an OpenVINO device (``gpu``, ``npu``, ``auto``).
            threads: inference threads (intra-op / INFERENCE_NUM_THREADS / torch threads).
            select: ``preference`` (the first usable artifact in :data:`PREFERENCE` order),
                ``fastest`` (time every usable candidate on this machine once and cache the
                choice, :mod:`btseg.runtime.select`) or ``fastest-fresh`` (re-measure).
            options: passed to the backend's ``load`` (e.g. ``precision_hint="bf16"``); they
                override the options the artifact was verified with, which apply by default.

        Raises:
            ArtifactError: no matching artifact, status failed; SchemaError: a malformed
                model.json / manifest.json; IntegrityError: a file differs from its sha256,
                leaves the package, or the artifact was exported from other weights.
            BackendUnavailableError: the asked-for backend is not installed / no device.
        """
        if select not in SELECT_MODES:
            raise ConfigError(f"select {select!r}: expected one of {', '.join(SELECT_MODES)}")
        pkg = load_package(package_dir, check_architecture=False)  # torch-free for ONNX/OpenVINO carts
        if backend == "torch":
            if target not in (None, "torch"):
                raise ConfigError(f"backend 'torch' runs the package weights; target {target!r} needs another backend")
            if precision not in (None, "fp32"):
                raise ConfigError(f"backend 'torch' runs the package weights in fp32; precision {precision!r} needs "
                                  "an exported artifact (--backend onnxruntime/openvino/tensorrt or auto)")
            return cls(pkg, load_backend("torch", pkg.root, device, threads, **options), None)
        if backend != "auto" and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; expected auto or one of {', '.join(BACKENDS)}")
        tried: list[str] = []
        candidates = cls._candidates(pkg, target, precision, backend, device)
        if select != "preference" and len(candidates) > 1:
            from btseg.runtime.select import load_fastest

            opened = load_fastest(pkg, candidates, lambda n, r: cls._open(pkg, n, r, device, threads, options),
                                  strict=backend != "auto", device=device, threads=threads, options=options,
                                  fresh=select == "fastest-fresh")
            if opened is not None:
                rec, be, tried, record = opened
                seg = cls(pkg, be, rec, tried)
                seg.selection = record
                return seg
        for name, rec in candidates:
            try:
                be = cls._open(pkg, name, rec, device, threads, options)
            except BackendUnavailableError as e:
                if backend != "auto":
                    raise
                tried.append(f"{name} {rec.target}/{rec.precision}: {e}")
                continue
            return cls(pkg, be, rec, tried)
        if backend == "auto" and target in (None, "torch") and precision in (None, "fp32"):
            return cls(pkg, load_backend("torch", pkg.root, device, threads), None, tried)
        raise BackendUnavailableError(f"{pkg.root}: nothing can run here; tried: " + "; ".join(tried))

    @staticmethod
    def _open(pkg: ModelPackage, name: str, rec: ArtifactRecord, device: str, threads: int | None,
              options: dict[str, Any]) -> Backend:
        path = pkg.verify_artifact(rec)  # an integrity failure is a refusal, never a skip (module doc)
        opts = {**verified_options(rec, name), **({"record": rec} if BACKENDS[name].takes_record else {}),
                "files": rec.files, **options}  # files: what a compiled cache / engine read is bound to
        return load_backend(name, path, device, threads, **opts)

    @staticmethod
    def _candidates(pkg: ModelPackage, target: str | None, precision: str | None, backend: str,
                    device: str) -> list[tuple[str, ArtifactRecord]]:
        """(backend name, record) in the order to try; raises if an explicit choice is unusable."""
        records = [r for r in pkg.artifacts() if (target is None or r.target == target)
                   and (precision is None or r.precision == precision)]
        if target is not None and precision is not None:
            for r in records:
                if why := _usable(r):
                    raise ArtifactError(f"{pkg.root}: refusing {why}; re-export it")
        usable = [r for r in records if _usable(r) is None]
        dclass = device_class(device)
        ranked = []
        order = PREFERENCE[dclass]
        for r in usable:
            if backend != "auto":
                if r.failed_on(backend):
                    if target is not None and precision is not None:
                        raise ArtifactError(f"{pkg.root}: refusing {r.target}/{r.precision} on {backend}: it failed "
                                            f"verification against PyTorch on that backend at export")
                    continue
                if r.target in BACKENDS[backend].targets:  # its own format first, then PREFERENCE
                    rank = next((i for i, c in enumerate(order) if c == (backend, r.target, r.precision)), len(order))
                    ranked.append((_verified(r) != "passed", (BACKENDS[backend].targets.index(r.target), rank), backend, r))
                continue
            hits = [(i, name) for i, (name, t, p) in enumerate(order) if (t, p) == (r.target, r.precision)]
            if not hits and r.target in FALLBACK[dclass]:  # e.g. onnx/fp16 on a CPU: slow but runnable
                hits = [(len(order), FALLBACK[dclass][r.target])]
            ranked += [(_verified(r) != "passed", (0, i), name, r) for i, name in hits if not r.failed_on(name)]
        if not ranked and (backend != "auto" or target not in (None, "torch")):
            have = ", ".join(f"{r.target}/{r.precision}({r.status})" for r in pkg.artifacts()) or "none"
            want = "/".join(x for x in (target, precision) if x) or "any"
            raise ArtifactError(f"{pkg.root}: no usable {want} artifact for backend {backend!r} on {device!r} "
                                f"(manifest has: {have})")
        return [(name, r) for _, _, name, r in sorted(ranked, key=lambda x: x[:2])]

    # -- inference -------------------------------------------------------------------
    def _split(self, image: Any, spacing_mm: Any) -> tuple[np.ndarray, Any]:
        if isinstance(image, Frame):
            return image.image, spacing_mm if spacing_mm is not None else image.spacing_mm
        return check_image(image), spacing_mm

    def segment(self, image: np.ndarray | Frame, spacing_mm: float | tuple[float, float] | None = None,
                roi: tuple[int, int, int, int] | str | None = None) -> Segmentation:
        """Segment one image (array or :class:`Frame`); result at the image's own size.

        A DICOM frame with ultrasound tissue regions is segmented region by region, each at
        its own spacing; ``roi=(x, y, w, h)`` or ``roi="auto"`` confines the mask to that part
        of the image (see :mod:`btseg.runtime.regions`; the result then lists its regions).
        """
        if (seg := segment_where(self.segment, image, spacing_mm, roi)) is not None:
            return seg
        t0 = time.perf_counter()
        img, spacing = self._split(image, spacing_mm)
        x = preprocess(img, self.spec)[None]
        t1 = time.perf_counter()
        logits = self.backend.infer(x)
        t2 = time.perf_counter()
        seg = self.post(logits[0], img.shape[:2], spacing)
        t3 = time.perf_counter()
        seg.timings = {"preprocess_ms": (t1 - t0) * 1e3, "infer_ms": (t2 - t1) * 1e3,
                       "postprocess_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3}
        return seg

    def segment_batch(self, images: Iterable[np.ndarray | Frame],
                      spacing_mm: float | tuple[float, float] | None = None,
                      roi: tuple[int, int, int, int] | str | None = None) -> list[Segmentation]:
        """Segment several images in one ``infer`` call; timings are the batch's, per image.
        With ``roi`` or ultrasound regions, each image is segmented on its own (:meth:`segment`)."""
        images = list(images)
        regions = any(getattr(getattr(im, "dicom", None), "has_regions", False) for im in images)
        if images and (roi is not None or regions):
            return [self.segment(im, spacing_mm, roi) for im in images]
        t0 = time.perf_counter()
        pairs = [self._split(im, spacing_mm) for im in images]
        if not pairs:
            raise DataError("images: empty batch; expected at least one image")
        x = np.stack([preprocess(img, self.spec) for img, _ in pairs])
        t1 = time.perf_counter()
        logits = self.backend.infer(x)
        t2 = time.perf_counter()
        out = [self.post(lg, img.shape[:2], sp)
               for lg, (img, sp) in zip(logits, pairs)]
        t3 = time.perf_counter()
        n = len(out)
        for seg in out:
            seg.timings = {"preprocess_ms": (t1 - t0) * 1e3 / n, "infer_ms": (t2 - t1) * 1e3 / n,
                           "postprocess_ms": (t3 - t2) * 1e3 / n, "total_ms": (t3 - t0) * 1e3 / n,
                           "batch_size": n}
        return out

    def stream(self, frames: Iterable[np.ndarray | Frame], spacing_mm: float | tuple[float, float] | None = None,
               roi: tuple[int, int, int, int] | str | None = None) -> Iterator[Segmentation]:
        """Segment a cine loop frame by frame (lazily: one frame in memory at a time)."""
        for frame in frames:
            yield self.segment(frame, spacing_mm, roi)

    def info(self) -> dict[str, Any]:
        """Backend, artifact, precision, providers/device, threads, actual inference precision."""
        b = self.backend.info()
        rec = self.record
        return {"backend": b.get("backend"), "package": str(self.package.root),
                "artifact": rec.file if rec else None, "target": rec.target if rec else "torch",
                "precision": rec.precision if rec else "fp32",
                "verification": _verified(rec) if rec else "reference",
                "device": b.get("device"), "providers": b.get("providers"), "threads": b.get("threads"),
                "inference_precision": b.get("inference_precision"), "input_size": list(self.spec.size),
                "threshold": self.threshold, "presence": self.post.spec.get("presence"),
                "skipped": list(self._tried), "backend_info": b,
                "selection": self.selection, "model_cache": b.get("model_cache"),
                # every file of what runs was checked at load (sha256, size, binding): record against what
                "weights_sha256": self.package.config.weights_sha256, "artifact_sha256": rec.sha256 if rec else None}
