#!/usr/bin/env python
"""Raw ONNX Runtime latency of several ONNX files of one model, interleaved (A, B, C, A, ...).

For comparing quantisation graphs (QDQ vs QOperator, recipes) on one machine under the same
load; p50 of each and its ratio to the first file.  The first file is the reference (FP32).

    python benchmarks/ort_interleaved.py student-fp32.onnx student-int8.onnx qop.onnx --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    sessions = []
    for f in a.files:
        o = ort.SessionOptions()
        o.intra_op_num_threads, o.inter_op_num_threads = a.threads, 1
        s = ort.InferenceSession(f, o, providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        sessions.append((f, s, i.name, np.random.default_rng(0).random(shape, dtype=np.float32)))
    times: dict[str, list[float]] = {f: [] for f in a.files}
    for r in range(a.warmup + a.rounds):
        for f, s, name, x in sessions:
            t0 = time.perf_counter()
            s.run(None, {name: x})
            if r >= a.warmup:
                times[f].append((time.perf_counter() - t0) * 1e3)
    p50 = {f: statistics.median(v) for f, v in times.items()}
    ref = p50[a.files[0]]
    print(json.dumps({"threads": a.threads, "rounds": a.rounds,
                      "p50_ms": {f: round(v, 2) for f, v in p50.items()},
                      "ratio_to_first": {f: round(v / ref, 3) for f, v in p50.items()}}, indent=1))


if __name__ == "__main__":
    main()
