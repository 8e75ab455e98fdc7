"""INT8 vs FP32 inference latency, interleaved, per backend (ORT and OpenVINO).

Usage::

    python benchmarks/int8_ratio.py --model PKG [--backends onnxruntime,openvino] [--rounds 40]
        [--threads 2] [--out ratio.json]

Loads every (backend, artifact) pair below through the real runtime (``Segmenter.load``),
then calls ``backend.infer`` on one preprocessed frame **round-robin in blocks**: ``--block``
consecutive calls of each artifact per round (the first untimed), ``--rounds`` times, so that
every artifact sees the same machine load (on a shared machine a sequential A-then-B run
measures the load as much as the model).  Blocks, not single calls: ONNX Runtime's idle
worker threads spin after a run, and with one call each the other session's spinning workers
took the cores from the running one (both p50s up to 40% higher, their ratio pulled toward 1).
Prints the p50 of each, the int8 / fp32 ratio of the p50s per backend, and the quartiles of
the ratio paired round by round; ``/proc/loadavg`` before and after says how loaded the
machine was.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

PAIRS = [("onnxruntime", "onnx", "fp32"), ("onnxruntime", "onnx", "int8"),
         ("openvino", "openvino", "fp32"), ("openvino", "openvino", "int8")]


def _load() -> list[str]:
    return open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--block", type=int, default=6, help="consecutive calls per artifact per round (first untimed)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--backends", default="onnxruntime,openvino",
                    help="comma list; one backend per run keeps the other's idle threads out of the timing")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    wanted = a.backends.split(",")
    pairs = [q for q in PAIRS if q[0] in wanted]
    from btseg.machine import probe_frame
    from btseg.preprocess import preprocess
    from btseg.runtime.segmenter import Segmenter
    from btseg.timing import for_rounds, round_robin

    segs = {f"{b} {t}/{p}": Segmenter.load(a.model, target=t, precision=p, backend=b, threads=a.threads)
            for b, t, p in pairs}
    spec = next(iter(segs.values())).spec
    x = preprocess(probe_frame((2 * spec.size[0], 2 * spec.size[1])), spec)[None]
    for s in segs.values():
        for _ in range(a.warmup):
            s.backend.infer(x)
    if a.block < 2 or a.rounds < 1:
        ap.error(f"--block {a.block} / --rounds {a.rounds}: expected block >= 2 and rounds >= 1")
    before = _load()
    timed = round_robin({k: (lambda s=s: s.backend.infer(x)) for k, s in segs.items()}, a.block, for_rounds(a.rounds))
    p50, per_round = timed.median(), timed.block_medians
    ratio = {b: p50[f"{b} {t}/int8"] / p50[f"{b} {t}/fp32"] for b, t, _ in pairs[::2]}
    paired = {b: [round(float(q), 3) for q in np.quantile(
        [i8 / f32 for i8, f32 in zip(per_round[f"{b} {t}/int8"], per_round[f"{b} {t}/fp32"])], [0.25, 0.5, 0.75])]
        for b, t, _ in pairs[::2]}
    ran = {k: s.info()["inference_precision"] for k, s in segs.items()}
    result = {"model": a.model, "threads": a.threads, "rounds": a.rounds, "block": a.block, "p50_ms": p50,
              "int8_over_fp32": ratio, "paired_ratio_q25_q50_q75": paired,
              "ran_as": ran, "loadavg_before": before, "loadavg_after": _load()}
    for k in segs:
        print(f"{k:28s} ran {ran[k]:5s} p50 {p50[k]:8.2f} ms")
    print(json.dumps({"int8_over_fp32": ratio, "paired_ratio_q25_q50_q75": paired,
                      "loadavg": [before, result["loadavg_after"]]}))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
