"""The DICOM node's throughput and its latency over btseg-predict, on the same files.

Usage::

    PYTHONPATH=. python benchmarks/dicom_node.py [--model PKG] [--copies 2] [--threads 2]
        [--out benchmarks/results/dicom_node.json]

Files: every bundled sample image as a US DICOM on a screen with a tissue region (the
test fixtures' builder, ``tests/dicom/dicom_fixtures.py``), ``--copies`` times with fresh UIDs.

1. **predict**: in this process, a Segmenter loaded once, then btseg-predict's ``predict_one``
   with ``--dicom`` (decode, regions, inference, PNG/JSON and SEG/SR writing) per file, timed
   per file (one warm-up file first); plus the btseg-predict CLI on all files in a subprocess
   (wall clock, start-up and model load included), for reference;
2. **node latency**: ``btseg-serve dicom`` in a subprocess (same model and threads, warmed by one
   instance); per file, from starting ``storescu`` (a new association each) to the instance's
   JSON record in ``results/`` (written last, after the SEG and SR);
3. **node throughput**: all files in one ``storescu`` association; instances/s from starting it
   to the last JSON record.

Added latency = median node latency - median predict_one time.  The node's worker is one
thread, so its throughput is bounded by predict_one's time per instance.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "dicom"), str(ROOT / "tests" / "runtime")]

from btseg import defaults  # noqa: E402
from btseg.io import write_json  # noqa: E402
from btseg.provenance import stamp  # noqa: E402

# the node's own code: what decides its added latency and throughput over predict_one
CODE_PATHS = ["btseg/dicom/node.py", "btseg/dicom/spool.py", "btseg/cli/serve.py", "benchmarks/dicom_node.py"]


def make_files(folder: Path, copies: int) -> list[Path]:
    """US DICOM files (new UIDs each call) from the bundled samples."""
    from dicom_fixtures import screen
    from dicom_util import write_dicom

    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for c in range(copies):
        for i, p in enumerate(defaults.sample_images()):
            canvas, region = screen(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE))
            out.append(write_dicom(folder / f"c{c}_{i:02d}.dcm", canvas, pixel_spacing=None, regions=[region]))
    return out


def uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def predict_times(model: Path, files: list[Path], threads: int, work: Path) -> list[float]:
    """ms of predict_one(--dicom) per file, model loaded before (one warm-up file first)."""
    from btseg.cli.serve import make_processor
    from btseg.runtime.segmenter import Segmenter

    seg = Segmenter.load(model, threads=threads)
    process = make_processor(seg, model, work / "results", overlay=False, allow_modalities=())
    times = []
    for i, f in enumerate(files):
        t0 = time.perf_counter()
        outcome = process(f)
        ms = 1000 * (time.perf_counter() - t0)
        if outcome.status != "ok":
            raise RuntimeError(f"{f}: {outcome.detail}")
        if i > 0:
            times.append(ms)
    return times


def predict_cli(model: Path, files: list[Path], threads: int, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "btseg.cli.predict", *map(str, files), "--model", str(model), "--dicom",
                    "--no-overlay", "--threads", str(threads), "--out", str(out)], check=True, cwd=ROOT,
                   capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0


def wait_for(paths: list[Path], timeout: float = 300) -> float:
    end = time.perf_counter() + timeout
    while not all(p.exists() for p in paths):
        if time.perf_counter() > end:
            raise RuntimeError(f"node did not finish {sum(not p.exists() for p in paths)} instance(s)")
        time.sleep(0.002)
    return time.perf_counter()


def storescu(port: int, files: list[Path]) -> None:
    subprocess.run(["storescu", "-aet", "BENCH", "-aec", "BTSEG", "127.0.0.1", str(port), *map(str, files)],
                   check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dicom_node.json")
    a = ap.parse_args()
    if not shutil.which("storescu"):
        sys.exit("storescu (dcmtk) is missing: apt-get install -y dcmtk")
    model = a.model or defaults.default_package()
    work = Path(tempfile.mkdtemp(prefix="btseg-node-bench-"))
    files = make_files(work / "a", a.copies)
    per_file = predict_times(model, [files[0], *files], a.threads, work / "p")
    cli_s = predict_cli(model, make_files(work / "b", a.copies), a.threads, work / "cli")

    port = 11000 + os.getpid() % 1000
    node_out = work / "node"
    log = open(work / "node.log", "w")
    node = subprocess.Popen([sys.executable, "-m", "btseg.cli.serve", "dicom", "--out", str(node_out), "--port",
                             str(port), "--model", str(model), "--threads", str(a.threads), "--no-overlay",
                             "--queue", str(4 * len(files))], stderr=log, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        res = node_out / "results"
        end = time.perf_counter() + 120
        while "listening" not in (work / "node.log").read_text():
            if time.perf_counter() > end or node.poll() is not None:
                raise RuntimeError((work / "node.log").read_text())
            time.sleep(0.1)
        warm = make_files(work / "w", 1)[:1]
        storescu(port, warm)
        wait_for([res / f"{uid(warm[0])}.json"])
        latency, store_ms, lat_uids = [], [], []
        for f in make_files(work / "c", a.copies):
            t0 = time.perf_counter()
            storescu(port, [f])
            store_ms.append(1000 * (time.perf_counter() - t0))
            latency.append(1000 * (wait_for([res / f"{uid(f)}.json"]) - t0))
            lat_uids.append(uid(f))
        burst = make_files(work / "d", a.copies)
        t0 = time.perf_counter()
        storescu(port, burst)
        t_sent = time.perf_counter()
        elapsed = wait_for([res / f"{uid(f)}.json" for f in burst]) - t0
    finally:
        node.send_signal(signal.SIGTERM)
        rc = node.wait(60)
    med_pred, med_node = statistics.median(per_file), statistics.median(latency)
    logged = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in re.finditer(
        r"sop=(\S+) ok: .* total_ms=(\d+) process_ms=(\d+)", (work / "node.log").read_text())}
    node_total = [logged[u][0] for u in lat_uids if u in logged]
    node_process = [logged[u][1] for u in lat_uids if u in logged]
    command = f"PYTHONPATH=. python benchmarks/dicom_node.py --copies {a.copies} --threads {a.threads}"
    result = {
        "provenance": stamp(command, CODE_PATHS), "command": command,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "model": "bundled default" if a.model is None else str(a.model), "files": len(files), "threads": a.threads,
        "predict_one_ms": {"median": med_pred, "p90": sorted(per_file)[int(0.9 * (len(per_file) - 1))],
                           "all": per_file},
        "predict_throughput_per_s": 1000 * len(per_file) / sum(per_file),
        "predict_cli_s_all_files": cli_s,
        "node_latency_ms": {"median": med_node, "p90": sorted(latency)[int(0.9 * (len(latency) - 1))],
                            "all": latency},
        "node_added_latency_ms_median": med_node - med_pred,
        # where the added time goes: storescu's own run (process start, association, send, answer),
        # the node's log (C-STORE received -> outputs written; of it, the worker's predict_one)
        "storescu_ms_median": statistics.median(store_ms),
        "node_logged_total_ms_median": statistics.median(node_total) if node_total else None,
        "node_logged_process_ms_median": statistics.median(node_process) if node_process else None,
        "node_throughput_per_s": len(burst) / elapsed, "node_burst_send_s": t_sent - t0,
        "node_burst_total_s": elapsed, "node_exit_code_on_sigterm": rc,
    }
    write_json(a.out, result)
    print(f"predict_one median {med_pred:.1f} ms ({result['predict_throughput_per_s']:.2f}/s); node latency median "
          f"{med_node:.1f} ms (added {med_node - med_pred:.1f} ms); node throughput "
          f"{result['node_throughput_per_s']:.2f} instances/s; predict CLI {cli_s:.1f} s for {len(files)} files; "
          f"storescu {result['storescu_ms_median']:.0f} ms, node logged total {result['node_logged_total_ms_median']} "
          f"process {result['node_logged_process_ms_median']} ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
