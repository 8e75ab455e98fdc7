#!/usr/bin/env python
"""Raw latency of several graphs of one model, interleaved in blocks: ``.onnx`` files on
ONNX Runtime, OpenVINO IRs (``.xml``) on OpenVINO (LATENCY hint, ``--threads`` threads).

For comparing quantisation graphs (QDQ vs QOperator, recipes, graph rewrites) on one machine
under the same load: every round runs ``--block`` consecutive calls of each file in turn
(A A A A, B B B B, A A A A, ...) and times all but the first call of each block.  Why blocks:
ORT's intra-op worker threads spin for a while after a run, so with one call per file (A, B,
A, B) the idle session's spinning workers steal the cores from the running one; on 2 cores
that inflated both p50s by up to 40% and pulled their ratio toward 1 (docs/bench.md).
``--no-spin`` turns spinning off instead (``session.intra_op.allow_spinning=0``), a check
that the ratio does not hinge on it.  The first file is the reference (FP32).

    python benchmarks/ort_interleaved.py student-fp32.onnx student-int8.onnx --threads 2 --block 6
    python benchmarks/ort_interleaved.py old/openvino-fp32/model.xml old/openvino-int8/model.xml \
        new/openvino-fp32/model.xml new/openvino-int8/model.xml --threads 2
"""

from __future__ import annotations

import argparse
import json
from typing import Callable

import numpy as np
import onnxruntime as ort

from btseg.machine import probe_input
from btseg.timing import for_rounds, round_robin


def _onnxruntime(path: str, threads: int, no_spin: bool) -> Callable[[], object]:
    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads, o.log_severity_level = threads, 1, 3
    o.add_session_config_entry("session.intra_op.allow_spinning", "0" if no_spin else "1")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    x = probe_input([d if isinstance(d, int) else 1 for d in i.shape])
    return lambda: s.run(None, {i.name: x})


def _openvino(path: str, threads: int) -> Callable[[], object]:
    import openvino as ov

    cm = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    req = cm.create_infer_request()
    shape = [d.get_length() if d.is_static else 1 for d in cm.input(0).get_partial_shape()]
    x = probe_input(shape)
    return lambda: req.infer({0: x})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--block", type=int, default=6, help="consecutive calls per file per round (first untimed)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-spin", action="store_true", help="session.intra_op.allow_spinning = 0")
    a = ap.parse_args()
    if a.block < 2 or a.rounds < 1:
        ap.error(f"--block {a.block} / --rounds {a.rounds}: expected block >= 2 and rounds >= 1")
    sessions = []
    for f in a.files:
        run = _openvino(f, a.threads) if f.endswith(".xml") else _onnxruntime(f, a.threads, a.no_spin)
        for _ in range(a.warmup):
            run()
        sessions.append((f, run))
    timed = round_robin(dict(sessions), a.block, for_rounds(a.rounds))
    p50, per_round = timed.median(), timed.block_medians  # each round's median: paired by round
    ref = p50[a.files[0]]
    # the ratio within each round (same load for both), then its median and quartiles over rounds
    paired = {f: sorted(b / r for b, r in zip(per_round[f], per_round[a.files[0]])) for f in a.files}
    quart = {f: [round(float(q), 3) for q in np.quantile(v, [0.25, 0.5, 0.75])] for f, v in paired.items()}
    print(json.dumps({"threads": a.threads, "rounds": a.rounds, "block": a.block, "spin": not a.no_spin,
                      "timed_calls": a.rounds * (a.block - 1), "loadavg": open("/proc/loadavg").read().split()[:3],
                      "p50_ms": {f: round(v, 2) for f, v in p50.items()},
                      "ratio_to_first": {f: round(v / ref, 3) for f, v in p50.items()},
                      "per_round_ratio_q25_q50_q75": quart}, indent=1))


if __name__ == "__main__":
    main()
