"""A cart's frame loop: capture on one thread, segment on another, never fall behind.

The source (``btseg.runtime.sources.FrameSource``) reads frames on its own thread into a
bounded queue; when the segmenter is still busy and the queue is full the *oldest* waiting
frame is dropped (and counted), so what the operator sees is at most ``--queue`` frames old
instead of an ever-growing lag.  A source that ends or stalls (no frame for ``--timeout``
seconds) ends the loop and is reported.  At the end it prints the source's status,
capture-to-result latency percentiles (p50/p90/p99), the Segmenter's own processing time
and the drop count.

    python examples/cart_loop.py                              # synthetic phantom cine, ~3 s
    python examples/cart_loop.py --model runs/demo/student --input cine.dcm --fps 30
    python examples/cart_loop.py --input /dev/video0 --roi auto   # a grabber: screen or plain B-mode
    python examples/cart_loop.py --input rtsp://cart.local/stream --timeout 1

With no ``--model`` it runs the bundled default model (``btseg.defaults``; trained on
phantoms, not for clinical use) on its fastest verified artifact; if that is missing, a
tiny random-init package built in a temporary directory (then only the timings mean anything).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from btseg.errors import BtsegError, DataError
from btseg.runtime import Frame, Segmenter
from btseg.runtime.regions import parse_roi
from btseg.runtime.roi_auto import detect_roi
from btseg.runtime.sources import FrameSource


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


def run(segmenter: Segmenter, source: FrameSource, roi: object = None, announce: str | None = None) -> dict:
    """Segment the newest frames of ``source`` until it ends, stalls or Ctrl-C (it drops what we
    miss); ``announce`` is printed to stderr once Ctrl-C is handled."""
    latencies, processing, no_roi = [], [], 0
    auto = isinstance(roi, str) and roi == "auto"
    # Ctrl-C ends the loop between two frames (a KeyboardInterrupt raised inside a decoder
    # or the reader's join would abort the process): the source stops and the stats print
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    if announce:  # only now: a Ctrl-C from here on stops the loop and still reports
        print(announce, file=sys.stderr, flush=True)
    try:
        with source:
            for frame in source:
                if stop.is_set():
                    break
                if auto and getattr(roi, "full", np.zeros(0)).shape != frame.image.shape[:2]:
                    try:  # once (again if the frame size changes); plain B-mode gives the whole frame
                        roi = detect_roi(frame.image, frame.source)
                    except DataError:  # a blank or frozen screen: nothing to segment, try the next frame
                        no_roi += 1
                        continue
                seg = segmenter.segment(frame, roi=roi)
                latencies.append((time.perf_counter() - frame.t_capture) * 1e3)
                processing.append(seg.timings["total_ms"])
    finally:
        signal.signal(signal.SIGINT, previous)
    interrupted = stop.is_set()
    st = source.stats
    return {"captured": st["captured"], "segmented": len(latencies), "dropped": st["dropped"],
            "status": "stopped" if interrupted else st["status"],
            "reason": "Ctrl-C" if interrupted else st["reason"], "latency_ms": latencies, "processing_ms": processing,
            "no_roi": no_roi, "frame_errors": st.get("frame_errors", 0), "last_frame_error": st.get("last_frame_error")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="model package (default: the bundled one)")
    ap.add_argument("--input", help="device index, /dev/videoN, URL, GStreamer pipeline, named pipe, video file "
                                    "or DICOM cine (default: synthetic phantom frames)")
    ap.add_argument("--frames", type=int, default=90, help="synthetic frames (default 90 = 3 s at 30 fps)")
    ap.add_argument("--fps", type=float, default=None, help="pace for files (default: their own rate, else 30)")
    ap.add_argument("--queue", type=int, default=2, help="frames that may wait; older ones are dropped")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds without a frame = source stalled")
    ap.add_argument("--loop", action="store_true", help="replay a file source until stopped (Ctrl-C)")
    ap.add_argument("--roi", default=None, help="X,Y,W,H or auto (screen captures)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--select", default="preference", choices=["preference", "fastest", "fastest-fresh"],
                    help="fastest: time every artifact on this machine at the first start, cache the choice")
    args = ap.parse_args()
    try:
        report(args)
    except BtsegError as e:  # a missing input, a bad package: one line and exit 2, like every btseg command
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # Ctrl-C before the loop started (loading)
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def report(args: argparse.Namespace) -> None:
    """Load, run the loop, print the source status and the latency percentiles."""
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or default_model(Path(tmp))
        segmenter = Segmenter.load(model, backend=args.backend, threads=args.threads, select=args.select)
        spec = args.input if args.input is not None else synthetic_cine(args.frames)
        fps = args.fps or (None if args.input else 30.0)
        source = FrameSource(spec, depth=args.queue, timeout=args.timeout, fps=fps, loop=args.loop)
        segmenter.segment(np.zeros((256, 256), np.uint8))  # warm-up outside the measurement
        r = run(segmenter, source, parse_roi(args.roi),
                announce=f"running on {spec if isinstance(spec, str) else 'synthetic frames'} (Ctrl-C stops and reports)")
    info = segmenter.info()
    print(f"{info['backend']} {info['target']}/{info['precision']} on {info['device']} "
          f"(runs {info['inference_precision']}, {info['threads']} threads)")
    print(f"source {source.kind} {source.name}: {r['status']} ({r['reason']})")
    print(f"captured {r['captured']} frames, segmented {r['segmented']}, dropped {r['dropped']}")
    if r["no_roi"] or r["frame_errors"]:
        print(f"not segmented: {r['no_roi']} frame(s) where --roi auto found no B-mode image, "
              f"{r['frame_errors']} unreadable frame(s) ({r['last_frame_error'] or '-'})")
    for name in ("latency_ms", "processing_ms"):
        p50, p90, p99 = np.percentile(r[name], [50, 90, 99]) if r[name] else (float("nan"),) * 3
        what = "capture->result" if name == "latency_ms" else "segment() time "
        print(f"{what}  p50 {p50:6.1f} ms   p90 {p90:6.1f} ms   p99 {p99:6.1f} ms")
    if r["status"] == "error":
        raise SystemExit(f"error: {r['reason']}")


if __name__ == "__main__":
    main()
