"""Benchmark orchestration: rows = (artifact in the manifest x backend that can run it).

Every package gets a ``torch/fp32`` row (its own weights in PyTorch, the accuracy
reference) plus one row per (artifact, backend) pair whose target that backend runs
(``BACKENDS`` in :mod:`btseg.runtime.backend`: an ONNX artifact runs on onnxruntime *and*
openvino).  A row that cannot run (backend not installed, artifact missing or corrupted,
device absent) is kept with ``status="failed"`` and the one-line ``reason``; the run goes on.

Per row, besides accuracy and batch-1 latency: the load time (OpenVINO: ``load_ms`` cold,
into an empty model cache, and ``load_cached_ms`` from that cache), throughput rows when
asked (``--batch N``: ``segment_batch`` of N frames; ``--streams N``: N requests in
flight), and the achieved GMAC/s as a share of this machine's peak for the precision the
row really ran in (:mod:`btseg.bench.peak`, measured once per run).

Example::

    >>> cfg = BenchConfig(models=["runs/demo/student"], data="data/phantom")   # doctest: +SKIP
    >>> result = run(cfg)                                                       # doctest: +SKIP
    >>> [(r["backend"], r["precision"], r["status"]) for r in result["rows"]]    # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from btseg.bench import accuracy, flops, latency, memory, open_segmenter, peak, sysinfo
from btseg.errors import BtsegError, ConfigError, IntegrityError
from btseg.preprocess import preprocess
from btseg.layout import MANIFEST, WEIGHTS, is_package
from btseg.machine import probe_frame
from btseg.package import load_package
from btseg.runtime.inputs import check_image
from btseg.specs import BACKEND_NAMES, BACKEND_SPECS, PRECISIONS
from btseg.specs import installed_backends as installed_backends

ALL_BACKENDS = BACKEND_NAMES


@dataclass
class BenchConfig:
    """Everything a benchmark run depends on (saved in the JSON report)."""

    models: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=lambda: list(ALL_BACKENDS))
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    data: str | None = None
    split: str = "test"
    device: str = "cpu"
    threads: int | None = None
    batch: int = 1
    streams: int = 1
    peak: bool = True
    warmup: int = 5
    iters: int | None = 50
    duration: float | None = None
    memory: bool = True
    memory_iters: int = 5
    compare_teachers: bool = False
    limit: int | None = None
    interleave: bool = True  # time a package's rows round-robin in blocks (latency.time_interleaved)
    block: int = 5
    skip_bad: bool = False  # leave the data set's bad items out (each named once) instead of refusing it

    def __post_init__(self) -> None:
        for name in ("batch", "streams"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{name} {value!r}: expected a whole number >= 1")
        bad = [b for b in self.backends if b not in ALL_BACKENDS]
        if bad:
            raise ConfigError(f"unknown backend(s) {', '.join(bad)}; expected {', '.join(ALL_BACKENDS)} or all")
        if self.threads is None:
            # fixed and recorded: every backend gets the same count, never its own default
            self.threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_inputs() -> tuple[str, str]:
    """The bundled default package and samples, or a clear error naming what is missing."""
    from btseg.defaults import default_package, samples_dir

    return str(default_package()), str(samples_dir())


def with_siblings(models: list[str]) -> list[str]:
    """``--compare-teachers``: add every sibling package (a directory with ``model.json``)
    of each given package: teacher-benign, teacher-malignant, baseline-unet, ..."""
    out = [str(Path(m)) for m in models]
    seen = {Path(m).resolve() for m in out}
    for m in models:
        for d in sorted(Path(m).resolve().parent.iterdir()):
            if d.is_dir() and is_package(d) and d.resolve() not in seen:
                seen.add(d.resolve())
                out.append(str(d))
    return out


def plan_rows(package: str, cfg: BenchConfig) -> list[dict[str, Any]]:
    """The rows of one package, before anything is run (status ``pending`` or ``skipped``)."""
    from btseg.runtime.backend import BACKENDS

    pkg = load_package(package)
    check_integrity(package)
    base = {"model": Path(package).name, "package": str(package), "role": pkg.config.role,
            "architecture": pkg.config.architecture, "input_size": list(pkg.config.input_size)}
    rows = [dict(base, backend="torch", target="torch", precision="fp32", file=WEIGHTS,
                 artifact_id="torch-fp32", status="pending", reason="", size_bytes=pkg.config.weights_size)] if "torch" in cfg.backends else []
    artifacts = pkg.artifacts()
    for backend in cfg.backends:
        if backend == "torch":
            continue
        runnable = [a for a in artifacts if a.target in BACKENDS[backend].targets and a.precision in cfg.precisions]
        for a in runnable:
            row = dict(base, backend=backend, target=a.target, precision=a.precision, file=a.file,
                       artifact_id=a.id, status="pending", reason="", export_verification=a.verification,
                       size_bytes=a.size_bytes)  # every file of it, as recorded and verified
            if a.status != "ok":
                why = ((a.verification or {}).get("failures") or [""])[0]
                row.update(status="skipped", reason=f"export status {a.status!r} in {MANIFEST}"
                           + (f": {why}" if why else ""))
            elif a.failed_on(backend):
                why = a.failure_on(backend)
                row.update(status="skipped", reason=f"failed export verification on {backend}: {why}")
            rows.append(row)
        if not runnable:
            have = ", ".join(sorted({f"{a.target}/{a.precision}" for a in artifacts})) or "none"
            installed = BACKEND_SPECS[backend].installed()
            reason = (f"backend {backend!r} is not installed ({BACKEND_SPECS[backend].install_hint})" if not installed
                      else f"no artifact {backend} can run at {','.join(cfg.precisions)} (manifest has: {have})")
            rows.append(dict(base, backend=backend, target="-", precision="-", file=None, artifact_id=None,
                             status="failed" if not installed else "skipped", reason=reason))
    return rows


def check_integrity(package: str) -> None:
    """Refuse (exit 2) a package that fails any schema, hash or weights binding check:
    the same check as ``btseg-check``, so a tampered package is never benchmarked."""
    from btseg.package_check import check_package

    errors = check_package(package).errors
    if errors:
        more = f" (and {len(errors) - 1} more; run btseg-check {package})" if len(errors) > 1 else ""
        raise IntegrityError(f"refusing to benchmark {package}: {errors[0]}{more}")


def _device_for(backend: str, device: str) -> str:
    # torch has no OpenVINO device names; its reference row runs on the CPU then
    if backend == "torch" and not device.startswith("cuda"):
        return "cpu"
    return device


def _frame(test: accuracy.TestSet | None, size: tuple[int, int]) -> np.ndarray:
    """The image latency is timed on: the first test image, else a 2x-input-size noise frame."""
    if test is not None and len(test):
        return test.images[0]
    return probe_frame((2 * size[0], 2 * size[1]))


def _load(row: dict[str, Any], cfg: BenchConfig, device: str, cache: str | None, **options: Any) -> tuple[Any, float]:
    opts = dict(options, cache=cache) if row["backend"] == "openvino" and cache else options
    t0 = time.perf_counter()
    seg = open_segmenter(row["package"], row["backend"], row["target"], row["precision"], device, cfg.threads, **opts)
    return seg, (time.perf_counter() - t0) * 1e3


def _throughput(row: dict[str, Any], cfg: BenchConfig, seg: Any, frame: np.ndarray, device: str,
                cache: str | None) -> list[dict[str, Any]]:
    """The ``--batch`` and ``--streams`` measurements of one row (none when both are 1)."""
    out = []
    if cfg.batch > 1:
        out.append(latency.time_batch(seg, frame, cfg.batch, cfg.warmup, cfg.iters, cfg.duration,
                                      latency.cuda_sync(device)))
    if cfg.streams > 1:
        many, _ = _load(row, cfg, device, cache, streams=cfg.streams)
        x = preprocess(check_image(frame), many.spec)[None]  # one frame per request, as benchmark_app
        res = latency.time_streams(many.backend, x, cfg.streams, cfg.warmup, cfg.iters, cfg.duration)
        res["backend_info"] = _jsonable({k: v for k, v in many.backend.info().items()
                                         if k in ("performance_hint", "streams", "threads")})
        out.append(res)
        del many
    return out


def run_row(row: dict[str, Any], cfg: BenchConfig, test: accuracy.TestSet | None,
            cache: str | None = None) -> dict[str, Any]:
    """Load, score, time and (in a subprocess) measure one row; failures become its reason.

    ``cache``: an (empty at first) OpenVINO model-cache folder for this run, so that the
    first load is cold and the second one is the cached start-up.
    """
    device = _device_for(row["backend"], cfg.device)
    row.update(device=device, threads=cfg.threads)
    try:
        seg, row["load_ms"] = _load(row, cfg, device, cache)
        if row["backend"] == "openvino" and cache:
            del seg
            seg, row["load_cached_ms"] = _load(row, cfg, device, cache)
        row["runtime"] = _jsonable(seg.info())
        if test is not None:
            summary = accuracy.evaluate(seg, test)
            row["accuracy"] = summary
            row.update(accuracy.headline(summary))
        frame = _frame(test, tuple(row["input_size"]))
        row["frame_shape"] = list(frame.shape)
        if not cfg.interleave:
            lat = latency.time_segmenter(seg, frame, cfg.warmup, cfg.iters, cfg.duration, latency.cuda_sync(device))
            row["latency"] = {k: v.to_dict() for k, v in lat.items()}
            row["latency_mode"] = "sequential"
        row["throughput"] = _throughput(row, cfg, seg, frame, device, cache)
        del seg
    except BtsegError as e:
        row.update(status="failed", reason=str(e).splitlines()[0])
        return row
    except Exception as e:  # noqa: BLE001 - one broken row must not end the run; keep the type and place
        tb = traceback.extract_tb(e.__traceback__)[-1]
        row.update(status="failed", reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                                           f"({Path(tb.filename).name}:{tb.lineno})")
        return row
    row["status"] = "ok"
    if cfg.memory:
        mem = memory.measure_memory(row["package"], row["backend"], row["target"], row["precision"],
                                    cfg.memory_iters, device, cfg.threads)
        row["memory"] = mem
    return row


def time_rows_interleaved(rows: list[dict[str, Any]], cfg: BenchConfig, test: accuracy.TestSet | None,
                          cache: str | None = None) -> None:
    """Batch-1 latency of every ok row, one package at a time, all its rows loaded together and
    timed round-robin (:func:`btseg.bench.latency.time_interleaved`).  A row that cannot be
    loaded again becomes failed with its reason."""
    for package in dict.fromkeys(r["package"] for r in rows):
        mine = [r for r in rows if r["package"] == package and r["status"] == "ok"]
        calls: dict[str, tuple[Any, np.ndarray, Any]] = {}
        for i, r in enumerate(mine):
            try:
                seg, _ = _load(r, cfg, r["device"], cache)
            except BtsegError as e:
                r.update(status="failed", reason=f"reloading for the interleaved timing: {str(e).splitlines()[0]}")
                continue
            calls[str(i)] = (seg, _frame(test, tuple(r["input_size"])), latency.cuda_sync(r["device"]))
        if not calls:
            continue
        res = latency.time_interleaved(calls, cfg.warmup, cfg.iters, cfg.duration, cfg.block)
        meta = res.pop("_meta")
        for key, lat in res.items():
            r = mine[int(key)]
            r["latency"] = {k: v.to_dict() for k, v in lat.items()}
            r["latency_mode"] = f"interleaved: {len(calls)} rows, {meta['rounds']} rounds of {meta['block']} calls"
        calls.clear()


def _jsonable(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, (str, int, float, bool)) or d is None:
        return d
    return d.item() if hasattr(d, "item") else str(d)


def add_model_facts(rows: list[dict[str, Any]]) -> None:
    """Params and MACs per package (once each), and Dice as % of the package's FP32 torch row."""
    facts: dict[str, tuple[int, int]] = {}
    for r in rows:
        if r["package"] not in facts:
            pkg = load_package(r["package"])
            model = pkg.build_model(load_weights=False)
            facts[r["package"]] = (flops.count_params(model), flops.count_macs(model, pkg.config.input_size,
                                                                                   model_in_channels(model)))
        r["params"], r["macs"] = facts[r["package"]]
        r["gmacs"] = r["macs"] / 1e9
    ref = {r["package"]: r.get("dice") for r in rows if r["backend"] == "torch" and r["status"] == "ok"}
    for r in rows:
        inf = (r.get("latency") or {}).get("infer") or {}
        r["images_per_s"] = 1000.0 / inf["p50_ms"] if inf.get("p50_ms") else None
        r["gmacs_per_s"] = r["gmacs"] * r["images_per_s"] if r["images_per_s"] else None
    for r in rows:
        base = ref.get(r["package"])
        r["dice_pct_fp32"] = 100.0 * r["dice"] / base if r.get("dice") is not None and base else None


def add_peak_share(rows: list[dict[str, Any]], peaks: dict[str, dict[str, Any]] | None) -> None:
    """Each row's achieved GMAC/s (batch-1 p50) as % of the peak of the precision it ran in."""
    for r in rows:
        key, top = peak.peak_for(peaks or {}, (r.get("runtime") or {}).get("inference_precision") or r["precision"])
        r["peak_precision"] = key
        r["pct_peak"] = 100.0 * r["gmacs_per_s"] / top if top and r.get("gmacs_per_s") else None
        for t in r.get("throughput") or []:
            t["gmacs_per_s"] = r["gmacs"] * t["images_per_s"]
            t["pct_peak"] = 100.0 * t["gmacs_per_s"] / top if top else None


def model_in_channels(model: Any) -> int:
    first = next((m for m in model.modules() if hasattr(m, "in_channels")), None)
    return int(getattr(first, "in_channels", 1))


def run(cfg: BenchConfig, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every row; returns ``{"config", "system", "test_set", "rows", "created"}``."""
    models = list(cfg.models)
    if not models:
        pkg, samples = default_inputs()
        models = [pkg]
        if cfg.data is None:
            cfg.data, cfg.split = samples, "all"
    if cfg.compare_teachers:
        models = with_siblings(models)
    cfg.models = models
    test = (accuracy.load_test_set(cfg.data, models, part=cfg.split, limit=cfg.limit, skip_bad=cfg.skip_bad)
            if cfg.data else None)
    rows = [r for m in models for r in plan_rows(m, cfg)]
    # once per run, on the same load as the rows (2-3 s); never cached across runs
    peaks = peak.measure(cfg.threads) if cfg.peak and any(r["status"] == "pending" for r in rows) else None
    with tempfile.TemporaryDirectory(prefix="btseg-bench-ovcache-") as cache:
        for r in rows:
            if r["status"] == "pending":
                run_row(r, cfg, test, cache)
            if progress:
                progress(r)
        if cfg.interleave:
            time_rows_interleaved(rows, cfg, test, cache)
    add_model_facts(rows)
    add_peak_share(rows, peaks)
    return {"created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "config": asdict(cfg),
            "system": sysinfo.collect(), "test_set": test.source if test is not None else None,
            "flops_convention": flops.CONVENTION, "peak": peaks, "rows": rows}


def below(result: dict[str, Any], min_dice: float) -> list[dict[str, Any]]:
    """The ok rows whose Dice is below ``min_dice`` (for ``--min-dice`` gating)."""
    return [r for r in result["rows"] if r["status"] == "ok" and (r.get("dice") is None or r["dice"] < min_dice)]
