"""Runtime latency per backend, and a long soak for memory growth.

    python benchmarks/soak_runtime.py latency [--iters 200] [--threads 2]
    python benchmarks/soak_runtime.py soak [--frames 10000] [--backend openvino] [--threads 2]

Both build the paper-config SimplifiedUNet() (random init: fine for timing) at 256x256 in a
temporary package, exported to ONNX and OpenVINO FP32 with ``btseg.export.run_export``
(no verification: there is no trained model to verify).

``latency``: end-to-end ``Segmenter.segment`` (pre + infer + post) on 256x256 phantom
frames, batch 1, per backend: p50/p90 of total_ms and the share of pre + post processing.
``soak``: segments ``--frames`` frames on one backend, printing RSS (psutil) at frame 1,000
and at the end, and p50 latency per 1,000-frame window; the growth between them is the leak
signal (a cart runs for hours).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def build(root: Path) -> Path:
    from btseg.preprocess import PreprocessSpec
    from btseg.export import run_export
    from btseg.models import SimplifiedUNet
    from btseg.package import ModelConfig, save_package

    import torch

    torch.manual_seed(0)
    save_package(root, SimplifiedUNet(), ModelConfig("simplified_unet", {}, PreprocessSpec(size=(256, 256))))
    run_export(root, targets=["onnx", "openvino"], precisions=["fp32"], verify=False)
    return root


def frames(n: int = 16, size: int = 256) -> list[np.ndarray]:
    from btseg.data.phantom import sample

    return [sample(3, i, "benign" if i % 2 else "malignant", size)[0] for i in range(n)]


def latency(pkg: Path, iters: int, threads: int) -> list[dict]:
    from btseg.runtime import Segmenter

    imgs, rows = frames(), []
    # OpenVINO twice: as it chooses (bf16 on AMX / AVX512-BF16 CPUs) and forced to f32
    runs = [("torch", {}), ("onnxruntime", {}), ("openvino", {}), ("openvino", {"precision_hint": "f32"})]
    for backend, options in runs:
        seg = Segmenter.load(pkg, backend=backend, threads=threads, **options)
        for im in imgs * 2:  # warm-up
            seg.segment(im)
        t = [seg.segment(imgs[i % len(imgs)]).timings for i in range(iters)]
        total = np.array([x["total_ms"] for x in t])
        prepost = np.array([x["preprocess_ms"] + x["postprocess_ms"] for x in t])
        info = seg.info()
        rows.append({"backend": backend, "target": info["target"], "runs": info["inference_precision"],
                     "p50_ms": round(float(np.percentile(total, 50)), 2),
                     "p90_ms": round(float(np.percentile(total, 90)), 2),
                     "pre_ms_p50": round(float(np.median([x["preprocess_ms"] for x in t])), 2),
                     "post_ms_p50": round(float(np.median([x["postprocess_ms"] for x in t])), 2),
                     "prepost_share": round(float(np.median(prepost / total)), 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def soak(pkg: Path, n: int, backend: str, threads: int) -> dict:
    import psutil

    from btseg.runtime import Segmenter

    proc, imgs = psutil.Process(), frames()
    seg = Segmenter.load(pkg, backend=backend, threads=threads)
    rss, window, p50 = {}, [], []
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        window.append(seg.segment(imgs[i % len(imgs)]).timings["total_ms"])
        if i % 1000 == 0:
            rss[i] = proc.memory_info().rss / 2**20
            p50.append(round(float(np.median(window)), 2))
            window = []
            print(f"frame {i}: RSS {rss[i]:.1f} MiB, p50 {p50[-1]} ms", flush=True)
    out = {"backend": backend, "frames": n, "seconds": round(time.perf_counter() - t0, 1),
           "rss_mib_at_1000": round(rss.get(1000, float("nan")), 1), "rss_mib_at_end": round(rss[max(rss)], 1),
           "p50_ms_per_1000": p50}
    print(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="btseg runtime latency and soak")
    ap.add_argument("mode", choices=["latency", "soak"])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--backend", default="openvino")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = build(Path(tmp) / "paper")
        if args.mode == "latency":
            latency(pkg, args.iters, args.threads)
        else:
            soak(pkg, args.frames, args.backend, args.threads)


if __name__ == "__main__":
    main()
