"""``btseg-serve dicom``: a DICOM node that segments what carts and PACS send it.

Each instance received by C-STORE is written to ``OUT/incoming/`` before the success status,
then segmented by one worker through exactly btseg-predict's path (:func:`btseg.cli.predict.predict_one`
with ``--dicom``: the same integrity checks, modality policy, ultrasound regions, output policy,
PNG/JSON and SEG/SR writers) into ``OUT/results/``; see :mod:`btseg.dicom.node` for statuses,
restart and stop.

Example::

    btseg-serve dicom --out /var/lib/btseg-node --host 0.0.0.0 --allow-aet CART1 --forward pacs:104:PACS
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import click
import cv2

from btseg.cli.common import HELP, handle_errors, quiet_teardown, require_extra
from btseg.errors import BtsegError

LOG = logging.getLogger("btseg.serve")


@click.group(context_settings=HELP)
def main() -> None:
    """Run btseg as a service (today: a DICOM node, `btseg-serve dicom --help`)."""


def make_processor(segmenter: Any, model: Path, results: Path, overlay: bool, allow_modalities: tuple[str, ...],
                   run: Any = None) -> Callable[[Path], Any]:
    """The node's worker function: one received file through btseg-predict's path (--dicom);
    ``run``: the :class:`~btseg.cli.predict_journal.OutputRun` held on ``results`` (lock + journal)."""
    from btseg.cli.predict import predict_one
    from btseg.cli.predict_inputs import discover
    from btseg.cli.predict_outputs import OutputPolicy
    from btseg.dicom.node import Outcome
    from btseg.dicom.seg import ModelIdentity
    from btseg.dicom.writer import DicomOutputs
    from btseg.imageio import Limits

    info = segmenter.info()
    backend = {k: info[k] for k in ("backend", "target", "precision", "device", "inference_precision", "threads")}
    dicom = DicomOutputs(ModelIdentity.from_info(info))
    limits = Limits.resolve()
    where = {"roi": None, "allow_modalities": allow_modalities}

    def process(path: Path) -> Outcome:
        batch = discover([path])
        # the node owns results/: a resent instance replaces its earlier (recorded) outputs
        policy = OutputPolicy(results, batch, overwrite=True, package=model)
        try:
            policy.plan(overlay, dicom=True)
            row = predict_one(batch.items[0], segmenter, results, overlay, None, backend, False, policy, limits,
                              where, dicom, run)
        except (BtsegError, cv2.error) as e:
            return Outcome("refused", str(e).strip().splitlines()[-1])
        except OSError as e:
            return Outcome("failed", f"{path}: {e.strerror or e}")
        sent = sorted(p for p in policy.written if p.name.endswith(("_seg.dcm", "_sr.dcm")))
        return Outcome("ok", f"frames={row['frames']} area_mm2={row['mm2']} confidence={row['conf']} "
                             f"seg+sr={len(sent)} files", sent)

    return process


@main.command("dicom")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default accepts connections from this machine only: the node "
                   "speaks plain DICOM (no TLS) and patient data must not cross a network unencrypted by "
                   "accident. To receive from carts/PACS, give this machine's address or 0.0.0.0, on a "
                   "trusted network segment, with --allow-aet.")
@click.option("--port", default=11112, show_default=True, type=click.IntRange(1, 65535),
              help="TCP port (11112 is the registered DICOM port that needs no root; 104 does).")
@click.option("--aet", default="BTSEG", show_default=True, help="This node's AE title (called AE title).")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("btseg-node"), show_default=True,
              help="Folder for incoming/, received/, results/ (SEG, SR, PNG, JSON) and refused/.")
@click.option("--forward", default=None, metavar="HOST:PORT:AET",
              help="Also C-STORE each SEG and SR to this node (a PACS); failures are logged, not retried.")
@click.option("--allow-aet", "allow_aet", multiple=True, metavar="AET",
              help="Accept associations only from these calling AE titles (repeatable); default: any.")
@click.option("--model", "-m", default=None, type=click.Path(path_type=Path),
              help="Model package. Default: the bundled model (synthetic phantoms; not for clinical use).")
@click.option("--queue", "queue_size", type=click.IntRange(1), default=16, show_default=True,
              help="Instances waiting for segmentation before C-STORE answers 0xA700 (out of resources; "
                   "senders retry later).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads.")
@click.option("--allow-modality", "allow_modality", multiple=True, metavar="MODALITY",
              help="Also segment this modality (default: ultrasound only; others get status 0xC001).")
@click.option("--any-modality", is_flag=True, help="Segment DICOM of any modality.")
@click.option("--overlay/--no-overlay", default=True, show_default=True, help="Write <uid>_overlay.png.")
@click.option("--stop-timeout", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="On SIGTERM/SIGINT: seconds to let the instance in progress finish before exiting.")
@handle_errors
def dicom(host: str, port: int, aet: str, out: Path, forward: str | None, allow_aet: tuple[str, ...],
          model: Path | None, queue_size: int, threads: int | None, allow_modality: tuple[str, ...],
          any_modality: bool, overlay: bool, stop_timeout: float) -> None:
    """A DICOM Storage SCP + Verification SCP that segments every ultrasound image it receives.

    Answers C-ECHO and C-STORE (the common storage SOP classes). A stored instance is on disk
    before the success status; it is then segmented in the background into OUT/results as
    <SOPInstanceUID>_seg.dcm (DICOM SEG), <uid>_sr.dcm (measurement SR), <uid>_mask.png and
    <uid>.json. Statuses: 0x0000 stored; 0xA700 queue full (retry later); 0xC000 dataset not
    parsable; 0xC001 not ultrasound. Anything received but not processed is processed at the next
    start. One log line per instance on stderr. Not supported: TLS, C-FIND/C-MOVE, forward retries.
    """
    require_extra("btseg-serve dicom", "dicom")
    from btseg import defaults
    from btseg.cli.predict_journal import OutputRun
    from btseg.dicom.node import DicomNode, Forward, NodeConfig
    from btseg.dicom.spool import Spool
    from btseg.runtime.segmenter import Segmenter

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s")
    LOG.setLevel(logging.INFO)  # our one line per instance; highdicom / pynetdicom only warn
    allow = ("*",) if any_modality else tuple(allow_modality)
    cfg = NodeConfig(out=out, host=host, port=port, aet=aet, allow_aets=allow_aet, queue=queue_size,
                     forward=Forward.parse(forward) if forward else None, allow_modalities=allow)
    model = model if model is not None else defaults.default_package()
    results = Spool(out).results
    # btseg-predict's --out lock and journal on results/ for the node's life: a second node (or a
    # btseg-predict run) into it is refused, a frame's outputs are written all or none, and what a
    # killed node left half-written is removed at the next start, before the backlog is processed
    with OutputRun(results) as run:
        if run.recovered:
            LOG.info("removed %d unfinished output(s) of an interrupted run in %s", len(run.recovered), results)
        segmenter = Segmenter.load(model, threads=threads)
        node = DicomNode(cfg, make_processor(segmenter, model, results, overlay, allow, run))
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        quiet_teardown()  # a second signal while the stopped node's process exits does not kill it
        node.start()
        while not stop.wait(0.5):
            pass
        LOG.info("stopping: no new associations; finishing the instance in progress (at most %.0f s)", stop_timeout)
        clean = node.stop(stop_timeout)
    left = len(node.spool.backlog())
    LOG.info("stopped %s: %s; %d instance(s) left in %s for the next start", "cleanly" if clean else
             "with the instance in progress unfinished", ", ".join(f"{k} {v}" for k, v in node.counts.items()),
             left, node.spool.incoming)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
