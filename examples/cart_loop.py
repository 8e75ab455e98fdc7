"""A cart's frame loop: capture on one thread, segment on a worker, never fall behind.

The capture side pushes frames into a bounded queue; when the worker is still busy and the
queue is full the *oldest* waiting frame is dropped (and counted), so what the operator
sees is at most ``--queue`` frames old instead of an ever-growing lag.  At the end it prints
capture-to-result latency percentiles (p50/p90/p99), the Segmenter's own processing time and
the drop count.

    python examples/cart_loop.py                              # synthetic phantom cine, ~3 s
    python examples/cart_loop.py --model runs/demo/student --input cine.dcm --fps 30

With no ``--model`` it runs the bundled default model (``btseg.defaults``; trained on
phantoms, not for clinical use) on its fastest verified artifact; if that is missing, a
tiny random-init package built in a temporary directory (then only the timings mean anything).
"""

from __future__ import annotations

import argparse
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from btseg.runtime import Frame, Segmenter, iter_frames


def synthetic_cine(n: int, size: int = 256) -> Iterator[Frame]:
    """Phantom B-mode frames (a few distinct ones, shifted a little every frame like a probe)."""
    try:
        from btseg.data.phantom import sample

        base = [sample(1, i, "benign" if i % 2 else "malignant", size)[0] for i in range(4)]
    except ImportError:  # phantom not installed: speckle noise is enough for timing
        rng = np.random.default_rng(0)
        base = [rng.rayleigh(60, (size, size)).clip(0, 255).astype(np.uint8) for _ in range(4)]
    for i in range(n):
        yield Frame(np.roll(base[(i // 30) % len(base)], i % 30, axis=1), spacing_mm=(0.1, 0.1), index=i)


def demo_package(root: Path) -> Path:
    """A small random-init Simplified U-Net package (128 px) for running without a model."""
    from btseg.preprocess import PreprocessSpec
    from btseg.models import SimplifiedUNet
    from btseg.package import ModelConfig, save_package

    widths = [16, 32, 64, 128]
    save_package(root, SimplifiedUNet(widths=widths), ModelConfig("simplified_unet", {"widths": widths},
                                                                    PreprocessSpec(size=(128, 128))))
    return root


def default_model(tmp: Path) -> Path:
    """The bundled package, else a random-init one (the ``btseg.errors`` type says which)."""
    from btseg import defaults
    from btseg.errors import ConfigError

    try:
        return defaults.default_package()
    except ConfigError:
        return demo_package(tmp / "demo")


def run(segmenter: Segmenter, frames: Iterator[Frame], fps: float, depth: int) -> dict:
    """Capture at ``fps`` into a queue of ``depth`` frames; a worker thread segments them."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    latencies, processing = [], []
    dropped = captured = 0

    def worker() -> None:
        while (item := q.get()) is not None:
            t_capture, frame = item
            seg = segmenter.segment(frame)
            latencies.append((time.perf_counter() - t_capture) * 1e3)
            processing.append(seg.timings["total_ms"])

    thread = threading.Thread(target=worker, name="segmenter", daemon=True)
    thread.start()
    period, t_next = 1.0 / fps, None
    for frame in frames:
        # the clock starts at the first frame: opening the source is not the loop falling behind
        t_next = (t_next or time.perf_counter()) + period
        captured += 1
        item = (time.perf_counter(), frame)
        try:
            q.put_nowait(item)
        except queue.Full:
            try:
                q.get_nowait()  # drop the oldest waiting frame: fresh frames matter more
                dropped += 1
            except queue.Empty:
                pass
            q.put_nowait(item)  # only this thread puts, so there is room now
        time.sleep(max(0.0, t_next - time.perf_counter()))
    q.put(None)
    thread.join()
    return {"captured": captured, "segmented": len(latencies), "dropped": dropped,
            "latency_ms": latencies, "processing_ms": processing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model package (default: the bundled one)")
    ap.add_argument("--input", type=Path, help="DICOM cine or video (default: synthetic phantom frames)")
    ap.add_argument("--frames", type=int, default=90, help="synthetic frames (default 90 = 3 s at 30 fps)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--queue", type=int, default=2, help="frames that may wait; older ones are dropped")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        segmenter = Segmenter.load(model, backend=args.backend, threads=args.threads)
        frames = iter_frames(args.input) if args.input else synthetic_cine(args.frames)
        segmenter.segment(np.zeros((256, 256), np.uint8))  # warm-up outside the measurement
        r = run(segmenter, frames, args.fps, args.queue)
    info = segmenter.info()
    print(f"{info['backend']} {info['target']}/{info['precision']} on {info['device']} "
          f"(runs {info['inference_precision']}, {info['threads']} threads)")
    print(f"captured {r['captured']} frames at {args.fps:g} fps, segmented {r['segmented']}, dropped {r['dropped']}")
    for name in ("latency_ms", "processing_ms"):
        p50, p90, p99 = np.percentile(r[name], [50, 90, 99]) if r[name] else (float("nan"),) * 3
        what = "capture->result" if name == "latency_ms" else "segment() time "
        print(f"{what}  p50 {p50:6.1f} ms   p90 {p90:6.1f} ms   p99 {p99:6.1f} ms")


if __name__ == "__main__":
    main()
