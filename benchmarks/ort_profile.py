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
from typing import Any

import numpy as np
import onnxruntime as ort

from btseg.machine import probe_input


def profile(path: str, threads: int, runs: int, nodes: int = 0) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        x = probe_input([d if isinstance(d, int) else 1 for d in i.shape])
        for _ in range(3):
            s.run(None, {i.name: x})
        del s
        so.enable_profiling, so.profile_file_prefix = True, os.path.join(tmp, "prof")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            s.run(None, {i.name: x})
        events = json.loads(Path(s.end_profiling()).read_text())
    ms: dict[str, float] = collections.defaultdict(float)
    names: dict[str, set[str]] = collections.defaultdict(set)
    per_node: dict[str, list[Any]] = {}  # node -> [op, input shape, output shape, ms per run]
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            ms[op] += e["dur"] / 1e3 / runs
            names[op].add(e["name"])
            shapes = [[list(d.values())[0] for d in e["args"].get(k, [])][:1] for k in ("input_type_shape",
                                                                                         "output_type_shape")]
            per_node.setdefault(e["name"], [op, *shapes, 0.0])[3] += e["dur"] / 1e3 / runs
    total = sum(ms.values())
    out: dict[str, dict[str, Any]] = {op: {"ms": round(v, 3), "share": round(v / total, 4), "nodes": len(names[op])}
                                      for op, v in sorted(ms.items(), key=lambda kv: -kv[1])}
    if nodes:
        top = sorted(per_node.values(), key=lambda r: -r[3])[:nodes]
        out["_slowest_nodes"] = {"rows": [{"op": r[0], "input": r[1], "output": r[2], "ms": round(r[3], 3)}
                                          for r in top]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--nodes", type=int, default=0, help="also list the N slowest nodes with their shapes")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    out = {}
    for f in a.files:
        out[f] = rows = profile(f, a.threads, a.runs, a.nodes)
        slowest = rows.pop("_slowest_nodes", {"rows": []})["rows"]
        print(f"== {f}  ({a.threads} threads, {a.runs} runs): {sum(r['ms'] for r in rows.values()):.1f} ms of kernels")
        for op, r in rows.items():
            print(f"   {op:22s} {r['ms']:8.2f} ms  {100 * r['share']:5.1f}%  nodes {r['nodes']}")
        for r in slowest:
            print(f"   node {r['op']:16s} {r['ms']:7.3f} ms  in {r['input']} out {r['output']}")
        if slowest:
            rows["_slowest_nodes"] = {"rows": slowest}
    if a.json:
        a.json.write_text(json.dumps({"threads": a.threads, "runs": a.runs, "profiles": out}, indent=1))


if __name__ == "__main__":
    main()
