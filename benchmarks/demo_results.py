#!/usr/bin/env python
"""The demo's numbers as one results file: ``benchmarks/results/demo.json``.

Runs ``btseg-demo`` (or reads an existing demo output folder) and keeps what README.md and
RESULTS.md quote: per model the test-split accuracy from its ``model.json`` (Dice, lesion
Dice, normal false-lesion rate with its n, HD95, params, GMACs, and the presence decision's
numbers when the package has one), the p90 of its FP32 ONNX Runtime and OpenVINO artifacts
from the demo's bench run, the machine, and a provenance block (command, commit, hash of the
code that decides these numbers).  ``make docs`` then fills the docs from it.

    python benchmarks/demo_results.py --out /tmp/demo-out            # run the demo, then write
    python benchmarks/demo_results.py --out demo-out --reuse          # from an existing demo run
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btseg.bench.sysinfo import short  # noqa: E402
from btseg.io import read_json, write_json  # noqa: E402
from btseg.layout import manifest_path  # noqa: E402
from btseg.layout import config_path  # noqa: E402
from btseg.provenance import stamp  # noqa: E402

# the code that decides the demo's numbers: data, models, training, scoring, export, runtime, bench
CODE_PATHS = ["btseg/data", "btseg/models", "btseg/distill", "btseg/export", "btseg/runtime", "btseg/bench",
              "btseg/preprocess.py", "btseg/metrics.py", "btseg/contract.py", "btseg/package.py",
              "btseg/cli/demo.py", "btseg/cli/demo_training.py"]


def collect(out: Path) -> dict:
    """What the docs quote, read from a finished demo output folder."""
    models = read_json(out / "results.json")
    for name, m in models.items():
        per = read_json(config_path(out / "run" / name)).get("metrics", {}).get("test", {}).get("per_class", {})
        m["normal_n"] = per.get("normal", {}).get("dice", {}).get("n_valid")
        m["lesion_n"] = sum(per.get(c, {}).get("dice", {}).get("n_valid") or 0 for c in ("benign", "malignant"))
    bench = read_json(out / "bench" / "bench.json")
    p90: dict[str, dict[str, float]] = {}
    for r in bench["rows"]:
        if r["status"] == "ok" and r["precision"] == "fp32" and r["target"] in ("onnx", "openvino") and \
                (r["backend"], r["target"]) in (("onnxruntime", "onnx"), ("openvino", "openvino")):
            p90.setdefault(r["model"], {})[r["backend"]] = r["latency"]["infer"]["p90_ms"]
    ok = [r for r in bench["rows"] if r["status"] == "ok" and r["model"] == "student" and r.get("latency")]
    best = min(ok, key=lambda r: r["latency"]["infer"]["p90_ms"]) if ok else None
    fastest = None if best is None else {
        "artifact": f"{best['backend']} {best['target']}/{best['precision']}", "p90_ms": best["latency"]["infer"]["p90_ms"],
        "dice_pct_fp32": best.get("dice_pct_fp32"), "ran_as": (best.get("runtime") or {}).get("inference_precision")}
    # the ONNX artifacts export also ran on OpenVINO, with the result (issue 23: INT8 Q/DQ on OpenVINO)
    manifest = read_json(manifest_path(out / "run" / "student"))
    also = {a["id"]: a.get("extra", {}).get("also_verified") for a in manifest.get("artifacts", [])
            if a.get("extra", {}).get("also_verified")}
    return {"models": models, "p90_fp32": p90, "fastest_student": fastest, "also_verified": also,
            "machine": short(bench["system"]),
            "bench_config": bench["config"], "test_set": bench.get("test_set")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="demo output folder")
    ap.add_argument("--reuse", action="store_true", help="read an existing demo run instead of running it")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "demo.json")
    args = ap.parse_args()
    demo = [sys.executable, "-m", "btseg.cli.demo", "--out", str(args.out)]
    if not args.reuse:
        subprocess.run(demo, check=True)
    command = f"python benchmarks/demo_results.py --out {shlex.quote(str(args.out))}" + (" --reuse" if args.reuse
                                                                                         else "")
    doc = {"provenance": stamp(command, CODE_PATHS), **collect(args.out)}
    write_json(args.results, doc)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
