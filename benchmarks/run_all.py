#!/usr/bin/env python
"""Reproduce benchmarks/RESULTS.md: every artifact of the demo run, plus OpenVINO's own
``benchmark_app`` on the same IRs as a cross-check of our latency harness.

Steps (each a CLI a user can run by hand; the commands are printed and recorded):

1. ``--build``: a phantom data set and the demo run (``btseg-data synth``, ``btseg-distill
   all --preset demo``) if ``--run`` has no student yet;
2. ``btseg-export`` of every package in the run (student, teachers, baselines) to ONNX and
   OpenVINO at FP32/FP16/INT8, where its manifest has no artifacts yet;
3. a copy of the student served at 256x256 (same weights, ``model.json`` input size 256;
   the network is fully convolutional), exported the same way;
4. ``btseg-bench --compare-teachers`` on the run, and ``btseg-bench`` on the 256 student;
5. ``benchmark_app -api sync -nireq 1 -hint none -nstreams 1 -nthreads T -niter N`` on each
   student IR (benchmark_app refuses ``-nthreads`` together with ``-hint latency``: "fine tune
   options ... explicitly set -hint option to none"; one stream on T threads is what the
   latency hint picks and what our OpenVINO backend runs);
6. ``summary.json`` (ratios, cross-check) and ``RESULTS.md`` in ``--out``.

Usage::

    .venv/bin/python benchmarks/run_all.py --build --run /tmp/bench-run/run --data /tmp/bench-run/data \
        --out /tmp/bench-run/results --iters 200
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from btseg.layout import is_package, manifest_path, weights_path

BIN = Path(sys.executable).parent
COMMANDS: list[str] = []


def sh(*cmd: str, log: Path | None = None) -> str:
    """Run a command, echo it, keep it for the report; stop on failure."""
    line = " ".join(shlex.quote(str(c)) for c in cmd)
    COMMANDS.append(line)
    print(f"$ {line}", flush=True)
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if log:
        log.write_text(r.stdout + r.stderr)
    if r.returncode not in (0, 1):  # 1 = --min-dice gate, not used here
        sys.exit(f"failed ({r.returncode}): {line}\n{r.stderr[-2000:]}")
    return r.stdout


def build(run: Path, data: Path) -> None:
    if not (data / "phantom.json").exists():
        sh(BIN / "btseg-data", "synth", "--out", data, "--n", "300", "--size", "256", "--seed", "0")
    if not is_package(run / "student"):
        sh(BIN / "btseg-distill", "all", "--preset", "demo", "--data", data, "--out", run, "--no-progress")


def export(pkg: Path, data: Path) -> None:
    man = manifest_path(pkg)
    if man.exists() and json.loads(man.read_text()).get("artifacts"):
        return
    # --no-verify-gate: a failed verification is recorded in the manifest (and the bench row), not fatal
    sh(BIN / "btseg-export", pkg, "-t", "onnx", "-t", "openvino", "-p", "all", "--calib-data", data,
       "--no-verify-gate")


def at_256(student: Path, dst: Path) -> Path:
    """Copy weights + config with the input size set to 256x256 (no artifacts)."""
    from btseg.preprocess import PreprocessSpec
    from btseg.package import ModelPackage, load_package

    if not is_package(dst):
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights_path(student), weights_path(dst))
        cfg = load_package(student).config
        cfg.preprocess = PreprocessSpec.from_dict({**cfg.preprocess.to_dict(), "size": [256, 256]})
        cfg.notes = f"{student} weights served at 256x256 for the latency benchmark"
        ModelPackage(dst, cfg).write_config()
    return dst


def benchmark_app(xml: Path, iters: int, threads: int, log: Path, precision: str | None = None) -> dict:
    """OpenVINO's own latency for one IR (sync API, one request, one stream, T threads).

    ``precision``: the inference precision our backend reported (f32/f16/bf16).  Without it
    benchmark_app runs an FP32 IR in bf16 on avx512_bf16/AMX CPUs while our backend asks for
    f32, and the two disagree by 2x for that reason alone (measured: RESULTS.md)."""
    extra = ["-infer_precision", precision] if precision in ("f32", "f16", "bf16") else []
    out = sh(BIN / "benchmark_app", "-m", xml, "-d", "CPU", "-api", "sync", "-nireq", "1", "-niter", str(iters),
             "-hint", "none", "-nstreams", "1", "-nthreads", str(threads), *extra, log=log)
    text = log.read_text()
    vals = {k.lower(): float(v) for k, v in re.findall(r"(Median|Average|Min|Max):\s+([\d.]+)\s*ms", text)}
    fps = re.search(r"Throughput:\s+([\d.]+)\s*FPS", text)
    prec = re.search(r"INFERENCE_PRECISION_HINT:\s*(.+)", text)
    return {"median_ms": vals.get("median"), "mean_ms": vals.get("average"), "min_ms": vals.get("min"),
            "max_ms": vals.get("max"), "fps": float(fps.group(1)) if fps else None,
            "inference_precision": prec.group(1).strip() if prec else None, "stdout_lines": len(out.splitlines())}


def bench(models: list[Path], data: Path, out: Path, iters: int, threads: int, teachers: bool) -> dict:
    cmd = [BIN / "btseg-bench", *sum((["--model", m] for m in models), []), "--data", data, "--out", out,
           "--iters", str(iters), "--warmup", "10", "--threads", str(threads), "--backends", "all"]
    sh(*cmd, *(["--compare-teachers"] if teachers else []), log=out.parent / f"{out.name}.log")
    return json.loads((out / "bench.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("/tmp/bench-run/run"))
    ap.add_argument("--data", type=Path, default=Path("/tmp/bench-run/data"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-run/results"))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", action="store_true", help="create the data and the demo run if missing")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    if a.build:
        build(a.run, a.data)
    if not is_package(a.run / "student"):
        sys.exit(f"{a.run}/student: no demo run (pass --build, or `make demo`)")
    pkgs = sorted(d for d in a.run.iterdir() if is_package(d))
    for p in pkgs:
        export(p, a.data)
    s256 = at_256(a.run / "student", a.out / "student-256" / "student")
    export(s256, a.data)
    # splits.json next to the 256 copy: same test images as the run
    from btseg.data.splits import splits_path

    if splits_path(a.run).exists():
        shutil.copy2(splits_path(a.run), splits_path(s256.parent))

    demo = bench([a.run / "student"], a.data, a.out / "demo", a.iters, a.threads, teachers=True)
    big = bench([s256], a.data, a.out / "student256", a.iters, a.threads, teachers=False)

    cross = [crosscheck(r, a.iters, a.threads, a.out) for res in (demo, big) for r in res["rows"]
             if r["status"] == "ok" and r["backend"] == "openvino" and r["target"] == "openvino"
             and r["model"] == "student"]
    summary = {"ratios": ratios(demo), "fastest_256": fastest(big), "benchmark_app": cross, "commands": COMMANDS,
               "system": demo["system"], "created": demo["created"]}
    from btseg.io import write_json

    write_json(a.out / "summary.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k not in ("commands", "system")}, indent=1))


def crosscheck(row: dict, iters: int, threads: int, out: Path) -> dict:
    """Our harness, benchmark_app, our harness again, back to back on one IR: on a shared
    machine the load drifts, so bracketing theirs between two of ours keeps it comparable."""
    xml = Path(row["package"]) / row["file"]
    tag = f"{row['input_size'][0]}-{row['precision']}"

    def ours() -> dict:
        res = json.loads(sh(BIN / "btseg-bench", "--model", row["package"], "--backends", "openvino", "--precisions",
                            row["precision"], "--no-memory", "--iters", str(iters), "--warmup", "10",
                            "--threads", str(threads), "--json"))
        r = next(r for r in res["rows"] if r["target"] == "openvino" and r["status"] == "ok")
        return r["latency"]["infer"]

    first = ours()
    ba = benchmark_app(xml, iters, threads, out / f"benchmark_app-{tag}.log", row["runtime"].get("inference_precision"))
    second = ours()
    p50 = (first["p50_ms"] + second["p50_ms"]) / 2
    return {"ir": str(xml), "input": row["input_size"], "precision": row["precision"],
            "ours_p50_ms": [first["p50_ms"], second["p50_ms"]], "ours_mean_ms": [first["mean_ms"], second["mean_ms"]],
            "ours_ran_as": row["runtime"].get("inference_precision"), "benchmark_app": ba,
            "median_ratio": p50 / ba["median_ms"] if ba["median_ms"] else None}


def ratios(res: dict) -> list[dict]:
    """Student / teacher p90 inference latency and peak memory, per (backend, target, precision)."""
    rows = [r for r in res["rows"] if r["status"] == "ok"]
    key = lambda r: (r["backend"], r["target"], r["precision"])  # noqa: E731
    out = []
    for s in (r for r in rows if r["role"] == "student"):
        for t in (r for r in rows if r["model"].startswith("teacher") and key(r) == key(s)):
            mem = lambda r: (r.get("memory") or {}).get("model_peak_mb")  # noqa: E731
            out.append({"student": s["model"], "teacher": t["model"], "backend": s["backend"], "target": s["target"],
                        "precision": s["precision"], "student_p90_ms": s["latency"]["infer"]["p90_ms"],
                        "teacher_p90_ms": t["latency"]["infer"]["p90_ms"],
                        "p90_ratio": s["latency"]["infer"]["p90_ms"] / t["latency"]["infer"]["p90_ms"],
                        "student_model_peak_mb": mem(s), "teacher_model_peak_mb": mem(t),
                        "peak_ratio": mem(s) / mem(t) if mem(s) and mem(t) else None,
                        "student_peak_rss_mb": (s.get("memory") or {}).get("peak_rss_mb"),
                        "teacher_peak_rss_mb": (t.get("memory") or {}).get("peak_rss_mb")})
    return out


def fastest(res: dict) -> dict | None:
    ok = [r for r in res["rows"] if r["status"] == "ok"]
    if not ok:
        return None
    r = min(ok, key=lambda r: r["latency"]["infer"]["p90_ms"])
    return {"backend": r["backend"], "target": r["target"], "precision": r["precision"],
            "ran_as": r["runtime"].get("inference_precision"), "p90_ms": r["latency"]["infer"]["p90_ms"],
            "e2e_p90_ms": r["latency"]["e2e"]["p90_ms"], "dice": r.get("dice"), "dice_pct_fp32": r.get("dice_pct_fp32")}


if __name__ == "__main__":
    main()
