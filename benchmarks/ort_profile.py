#!/usr/bin/env python
"""Where ONNX Runtime spends an ONNX graph's time: kernel time per operator type (ORT profiler).

    python benchmarks/ort_profile.py student-fp32.onnx student-int8.onnx --threads 2 --runs 10

Runs each file ``--runs`` times after 3 warm-up calls with ``SessionOptions.enable_profiling``
and sums the ``*_kernel_time`` events by the op type ORT really ran (after its fusions and
layout transforms: ``QLinearConv``, ``NhwcMaxPool``, ``Resize``, ...).  Prints ms per run, the
share of the total and the node count, per file; ``--json`` writes the same as JSON.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort


def profile(path: str, threads: int, runs: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
        for _ in range(3):
            s.run(None, {i.name: x})
        del s
        so.enable_profiling, so.profile_file_prefix = True, os.path.join(tmp, "prof")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            s.run(None, {i.name: x})
        events = json.loads(Path(s.end_profiling()).read_text())
    ms: dict[str, float] = collections.defaultdict(float)
    nodes: dict[str, set[str]] = collections.defaultdict(set)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            ms[op] += e["dur"] / 1e3 / runs
            nodes[op].add(e["name"])
    total = sum(ms.values())
    return {op: {"ms": round(v, 3), "share": round(v / total, 4), "nodes": len(nodes[op])}
            for op, v in sorted(ms.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    out = {}
    for f in a.files:
        out[f] = rows = profile(f, a.threads, a.runs)
        print(f"== {f}  ({a.threads} threads, {a.runs} runs): {sum(r['ms'] for r in rows.values()):.1f} ms of kernels")
        for op, r in rows.items():
            print(f"   {op:22s} {r['ms']:8.2f} ms  {100 * r['share']:5.1f}%  nodes {r['nodes']}")
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "runs": a.runs, "profiles": out}, indent=1))


if __name__ == "__main__":
    main()
