"""btseg-predict's pipelined throughput against ``benchmark_app -api async`` on the same IR.

Usage::

    python benchmarks/throughput.py --model PKG --images DIR [--precision int8] [--streams 2]
        [--threads 2] [--rounds 3] [--seconds 10] [--out throughput.json]

Per round, one after the other (interleaved, so both see the same machine load):

1. ``benchmark_app -m PKG/openvino-<precision>/model.xml -d CPU -api async -hint none
   -nstreams N -nthreads T -t SECONDS``: inference only, random input, N requests in flight;
2. the ``btseg-predict`` pipeline in this process (the same functions the CLI runs:
   ``expand`` -> ``ordered_map(predict_one, workers=N+1)``, decode + preprocess + inference
   + postprocess + mask/overlay/JSON writing of every image of DIR) on a Segmenter loaded
   with ``streams=N`` (OpenVINO THROUGHPUT, NUM_STREAMS=N), timed from the first image to
   the last (model already loaded);
3. the ``btseg-predict`` CLI in a subprocess on the same folder (wall clock, start-up and
   model load included), for reference.

Prints the medians and predict / benchmark_app, and writes everything to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def benchmark_app(xml: Path, streams: int, threads: int, seconds: float) -> float:
    """``benchmark_app -api async`` throughput (FPS) of ``xml``."""
    exe = Path(sys.executable).with_name("benchmark_app")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "openvino.tools.benchmark.main"]
    # benchmark_app takes -nstreams/-nthreads only with -hint none (its UI rule); same config as ours
    cmd += ["-m", str(xml), "-d", "CPU", "-api", "async", "-hint", "none", "-nstreams", str(streams),
            "-nthreads", str(threads), "-t", str(int(round(seconds)))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Throughput:\s+([\d.]+)\s+FPS", out)
    if not m:
        raise RuntimeError(f"no throughput in benchmark_app output:\n{out[-2000:]}")
    return float(m.group(1))


def predict_inprocess(model: str, images: Path, precision: str, streams: int, threads: int) -> float:
    """images/s of the predict pipeline (model loaded before the clock starts), set up as
    ``btseg.cli.predict.main`` does it: discover, output policy, limits, ordered_map."""
    from btseg.cli.predict import predict_one
    from btseg.cli.predict_inputs import discover
    from btseg.cli.predict_outputs import OutputPolicy
    from btseg.imageio import Limits
    from btseg.runtime.pipeline import ordered_map
    from btseg.runtime.segmenter import Segmenter

    seg = Segmenter.load(model, target="openvino", precision=precision, backend="openvino", threads=threads,
                         streams=streams)
    info = seg.info()
    rec = {k: info[k] for k in ("backend", "target", "precision", "device", "inference_precision", "threads")}
    batch = discover((images,))
    limits = Limits.resolve(None, None)
    where = {"roi": None, "allow_modalities": ()}
    with tempfile.TemporaryDirectory() as out:
        policy = OutputPolicy(Path(out), batch, package=Path(model))
        policy.plan(True)
        t0 = time.perf_counter()
        results = list(ordered_map(lambda it: predict_one(it, seg, Path(out), True, None, rec, False, policy,
                                                          limits, where), batch.items, workers=streams + 1))
        dt = time.perf_counter() - t0
    bad = [r for _, r in results if isinstance(r, Exception)]
    if bad:
        raise RuntimeError(f"{len(bad)} inputs failed, first: {bad[0]}")
    return len(batch.items) / dt


def predict_cli(model: str, images: Path, precision: str, streams: int, threads: int) -> float:
    """images/s of ``btseg-predict DIR`` as a user runs it (start-up and load included)."""
    n = len([p for p in images.iterdir() if p.suffix.lower() == ".png"])
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", "from btseg.cli.predict import main; main()", str(images), "--model", model,
               "--backend", "openvino",
               "--target", "openvino", "--precision", precision, "--threads", str(threads),
               "--streams", str(streams), "--out", out]
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, check=True)
        dt = time.perf_counter() - t0
        written = len(list(Path(out).glob("*_mask.png")))
        if written != n:
            raise RuntimeError(f"btseg-predict wrote {written} masks for {n} images")
        return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", required=True, type=Path, help="a folder of images (not searched recursively)")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--streams", type=int, default=2)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    from btseg.package import load_package

    pkg = load_package(a.model, check_architecture=False)
    rec = next(r for r in pkg.artifacts() if r.target == "openvino" and r.precision == a.precision)
    xml = pkg.artifact_path(rec)
    runs: dict[str, list[float]] = {"benchmark_app": [], "predict_pipeline": [], "predict_cli": []}
    for i in range(a.rounds):
        runs["benchmark_app"].append(benchmark_app(xml, a.streams, a.threads, a.seconds))
        runs["predict_pipeline"].append(predict_inprocess(a.model, a.images, a.precision, a.streams, a.threads))
        runs["predict_cli"].append(predict_cli(a.model, a.images, a.precision, a.streams, a.threads))
        print(f"round {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {"model": a.model, "ir": str(xml), "images": str(a.images), "streams": a.streams, "threads": a.threads,
              "rounds": runs, "median_images_per_s": med,
              "pipeline_vs_benchmark_app": med["predict_pipeline"] / med["benchmark_app"],
              "cli_vs_benchmark_app": med["predict_cli"] / med["benchmark_app"],
              "loadavg_after": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else None}
    print(json.dumps({k: result[k] for k in ("median_images_per_s", "pipeline_vs_benchmark_app",
                                             "cli_vs_benchmark_app", "loadavg_after")}, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
