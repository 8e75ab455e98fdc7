"""GPU smoke test: what one CUDA machine can check in under 5 minutes, written as JSON.

    python benchmarks/gpu_smoke.py --out gpu_smoke.json            # on a machine with a GPU
    python benchmarks/gpu_smoke.py --dry-run --out /tmp/dry.json   # CPU: same code, tiny sizes

Sections (each recorded ``ok`` / ``failed`` (with the error) / ``skipped`` (with the reason);
one failing section does not stop the others):

``environment``  torch + CUDA, the GPU (name, compute capability, driver), the versions of
                 tensorrt, cuda-bindings and onnxruntime, ORT's providers.
``parity``       the paper student (SimplifiedUNet, seeded random init) at 256 px: CUDA
                 FP32 and CUDA autocast-FP16 logits against the CPU FP32 ones.
``amp_train``    AMP steps (autocast FP16 + GradScaler, the loop of btseg.distill.train) of
                 the paper teacher (Attention U-Net 64..1024) and of the student with dual
                 KD from two such teachers, at the paper preset's batch and 256 px:
                 ms/step, peak CUDA memory, losses finite.
``export``       the student package exported to ONNX fp32/fp16 and, where TensorRT is
                 usable, to TensorRT fp32/fp16/int8 (phantom calibration), verified.
``bench``        ``btseg-bench --device cuda --json`` rows for torch and, where installed,
                 onnxruntime(-gpu) and tensorrt on phantom images.

Random-init weights: latency and parity are meaningful, Dice is not.  ``--dry-run`` runs
every section on the CPU at 64 px with small models and 2 steps (what CI exercises).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from btseg.export.tensorrt import cuda_devices, probe

    out: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "gpus": cuda_devices(),
                           "tensorrt_probe": probe() or "ok"}
    for name in ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "cuda-bindings", "onnxruntime", "onnxruntime-gpu"):
        out[name] = _version(name)
    try:
        import onnxruntime as ort

        out["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        pass
    if not args.dry_run and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA device (a CPU build of torch, or no driver)")
    return out


def _student(args: argparse.Namespace):
    import torch

    from btseg.models import create_model

    torch.manual_seed(0)
    return create_model("simplified_unet", **({"widths": [8, 16, 32]} if args.dry_run else {})).eval()


def parity(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    model, s = _student(args), args.size
    x = torch.randn(4, 1, s, s, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(x)
        model.to(args.device)
        y32 = model(x.to(args.device)).float().cpu()
        with torch.autocast(args.device.split(":")[0], dtype=torch.float16 if not args.dry_run else torch.bfloat16):
            y16 = model(x.to(args.device)).float().cpu()
    p = torch.sigmoid
    return {"device": args.device, "input": list(x.shape),
            "fp32_max_abs_logit_diff": float((y32 - ref).abs().max()),
            "fp32_max_abs_prob_diff": float((p(y32) - p(ref)).abs().max()),
            "amp_max_abs_prob_diff": float((p(y16) - p(ref)).abs().max()),
            "amp_mask_agreement": float(((p(y16) >= 0.5) == (p(ref) >= 0.5)).float().mean()),
            "amp_dtype": "float16" if not args.dry_run else "bfloat16 (CPU dry run)"}


def _amp_steps(objective: Any, args: argparse.Namespace, batch: int) -> dict[str, Any]:
    """``args.steps`` AMP steps on random batches, as btseg.distill.train.fit does them."""
    import torch

    dev, s = args.device, args.size
    cuda = dev.startswith("cuda")
    objective.to(dev).train()
    opt = torch.optim.AdamW(objective.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    g = torch.Generator().manual_seed(0)
    losses, times = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.steps):
        x = torch.randn(batch, 1, s, s, generator=g).to(dev)
        y = (torch.rand(batch, 1, s, s, generator=g) > 0.7).float().to(dev)
        labels = torch.randint(0, 3, (batch,), generator=g)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=cuda):
            loss, _ = objective(x, y, labels)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(float(loss.detach()))
    steady = sorted(times[1:] or times)
    out = {"batch": batch, "size": s, "steps": args.steps, "ms_per_step_median": round(steady[len(steady) // 2], 2),
           "first_step_ms": round(times[0], 1), "loss_first": losses[0], "loss_last": losses[-1],
           "losses_finite": all(l == l and abs(l) != float("inf") for l in losses)}  # noqa: E741
    if cuda:
        out["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if not out["losses_finite"]:
        raise RuntimeError(f"non-finite loss under AMP: {losses}")
    return out


def amp_train(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import torch

    from btseg.distill.config import get_preset
    from btseg.distill.losses import DistillObjective, SupervisedObjective
    from btseg.models import create_model

    cfg = get_preset("tiny" if args.dry_run else "paper")
    torch.manual_seed(0)
    teacher = create_model(cfg.teacher_arch, **cfg.teacher_kwargs)
    out = {"preset": cfg.preset, "teacher_params": sum(p.numel() for p in teacher.parameters())}
    out["teacher"] = _amp_steps(SupervisedObjective(teacher), args, cfg.batch_size)
    teachers = [teacher, create_model(cfg.teacher_arch, **cfg.teacher_kwargs)]
    student = create_model(cfg.student_arch, **cfg.student_kwargs)
    out["student_params"] = sum(p.numel() for p in student.parameters())
    objective = DistillObjective(student, teachers, cfg.kd, cfg.teachers, cfg.alpha, cfg.beta, cfg.temperature)
    out["student_dual_kd"] = _amp_steps(objective, args, cfg.batch_size)
    return out


def _phantom(args: argparse.Namespace, work: Path) -> Path:
    from btseg.data.phantom import synthesize

    root = work / "phantom"
    if not root.is_dir():
        synthesize(root, n=16, size=args.size, seed=0, workers=1)
    return root


def export(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from btseg.preprocess import PreprocessSpec
    from btseg.errors import BtsegError
    from btseg.export import run_export
    from btseg.export.tensorrt import probe
    from btseg.package import ModelConfig, save_package
    from btseg.specs import PRECISIONS

    pkg = work / "student"
    model, data = _student(args), _phantom(args, work)
    kwargs = {"widths": [8, 16, 32]} if args.dry_run else {}
    save_package(pkg, model, ModelConfig("simplified_unet", kwargs, preprocess=PreprocessSpec(size=(args.size,) * 2)))
    out: dict[str, Any] = {}
    jobs = [(["onnx"], ["fp32", "fp16"])]
    reason = probe()
    if reason is None:
        jobs.append((["tensorrt"], list(PRECISIONS)))
    else:
        out["tensorrt"] = f"skipped: {reason}"
    for targets, precisions in jobs:
        try:  # random init: verification is recorded, not gated
            results = run_export(pkg, targets, precisions, calib_data=data, calib_size=8, verify_data=data,
                                 verify_n=4, verify_gate=False, dynamic_batch=True)
        except BtsegError as e:
            results = getattr(e, "results", None)
            if results is None:
                raise
        for r in results:
            out[f"{r.target}-{r.precision}"] = {"status": r.status, "reason": r.reason,
                                                "size_bytes": r.size_bytes, "seconds": r.export_seconds,
                                                "verification": r.verification}
    return out


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from btseg.bench.runner import installed_backends
    from btseg.layout import manifest_path

    pkg, data = work / "student", _phantom(args, work)
    if not manifest_path(pkg).is_file():
        raise RuntimeError("no exported package (the export section failed)")
    backends = [b for b in ("torch", "onnxruntime", "tensorrt") if b in installed_backends()]
    cmd = [sys.executable, "-c", "from btseg.cli.bench import main; main()", "--model", str(pkg),
           "--backends", ",".join(backends), "--device", args.device, "--data", str(data), "--split", "all",
           "--limit", "4", "--iters", str(args.iters), "--warmup", "3", "--no-memory", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.bench_timeout)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"btseg-bench exit {r.returncode}: {r.stderr.strip()[-800:]}")
    result = json.loads(r.stdout)
    return {"command": " ".join(cmd[3:]), "exit_code": r.returncode, "backends": backends,
            "rows": result.get("rows", result)}


SECTIONS: dict[str, Callable[[argparse.Namespace, Path], dict[str, Any]]] = {
    "environment": environment, "parity": parity, "amp_train": amp_train, "export": export, "bench": bench}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_smoke.json"), help="JSON result file.")
    ap.add_argument("--device", default=None, help="default cuda (cpu with --dry-run)")
    ap.add_argument("--steps", type=int, default=None, help="AMP steps per model (default 10; 2 with --dry-run)")
    ap.add_argument("--iters", type=int, default=None, help="btseg-bench timed calls per row (default 100)")
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma list of " + ", ".join(SECTIONS))
    ap.add_argument("--bench-timeout", type=int, default=180)
    ap.add_argument("--dry-run", action="store_true", help="CPU, 64 px, small models: checks the script itself")
    args = ap.parse_args(argv)
    args.device = args.device or ("cpu" if args.dry_run else "cuda")
    args.steps = args.steps or (2 if args.dry_run else 10)
    args.iters = args.iters or (3 if args.dry_run else 100)
    args.size = 64 if args.dry_run else 256
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; expected {', '.join(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the sections, write ``--out``; exit 1 when a section failed."""
    from btseg.io import atomic_write

    args = parse_args(argv)
    report: dict[str, Any] = {"dry_run": args.dry_run, "device": args.device, "started": time.strftime("%FT%TZ", time.gmtime())}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="btseg-gpu-smoke-") as tmp:
        for name in args.sections:
            t0 = time.perf_counter()
            try:
                report[name] = {"status": "ok", **SECTIONS[name](args, Path(tmp))}
            except Exception as e:  # noqa: BLE001 - a smoke run records every failure and goes on
                report[name] = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                                "traceback": traceback.format_exc(limit=5)}
            report[name]["seconds"] = round(time.perf_counter() - t0, 2)
            print(f"{name}: {report[name]['status']} ({report[name]['seconds']} s)", file=sys.stderr)
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    with atomic_write(args.out, "w") as f:
        json.dump(report, f, indent=2, default=str)
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if any(isinstance(v, dict) and v.get("status") == "failed" for v in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
