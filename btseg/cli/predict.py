"""``btseg-predict``: segment images, DICOM files (every cine frame) and videos.

For each input frame it writes, into ``--out``::

    <stem>_mask.png      0/255 lesion mask at the input's own size
    <stem>_overlay.png   the image with the lesion contour drawn (--no-overlay: skipped)
    <stem>.json          lesion_present and presence (the package's "no lesion" decision
                         and its score), area (px, mm^2 when the spacing is known), bbox,
                         confidence, timings, backend

``<stem>`` is the input file's stem, ``<stem>_f0003`` for frame 3 of a cine or video; the
outputs of a file found in a folder go to the same sub-folder of ``--out``.  A folder that
is a data set (BUSI, Dataset B, folder layout) gives its images, never its masks; any other
folder its images, DICOM and videos, recursively (see :mod:`btseg.cli.predict_inputs`).

Outputs never replace a file btseg-predict did not write (see :mod:`btseg.cli.predict_outputs`):
every planned path is checked before the model is even loaded.  Inputs are bounded
(``--max-pixels``, ``--max-file-mb``, regular files only: :mod:`btseg.imageio`).

Exit codes: 0 every input segmented; 1 some inputs failed (each named in one line, the
rest processed); 2 a usage, output-policy or package error (one ``error:`` line, nothing
run).  ``--json`` prints one JSON record per frame on stdout (everything else goes to stderr).

Example::

    btseg-predict scans/*.png cine.dcm --model runs/demo/student --out preds --threads 2
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

import click
import cv2
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from btseg.cli.common import HELP, console, finite, handle_errors, quiet_teardown, require_extra
from btseg.cli.predict_inputs import InputItem, discover
from btseg.cli.predict_journal import OutputRun
from btseg.cli.predict_outputs import OutputPolicy
from btseg.cli.predict_write import display_bgr, save_outputs  # noqa: F401 (display_bgr re-exported)
from btseg.errors import BtsegError, ConfigError, DataError
from btseg.imageio import Limits
from btseg.io import json_text
from btseg.runtime.backend import BACKENDS
from btseg.runtime.select import SELECT_MODES
from btseg.runtime.inputs import iter_frames, kind_of
from btseg.specs import PRECISIONS, TARGET_NAMES


def next_free(base: Path) -> Path:
    """``base`` when it does not exist or is empty, else the first free ``base-2``, ``base-3``, ...
    (as Ultralytics' runs/predict2): the default output never collides with an earlier run."""
    candidate, k = base, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


class FrameErrors(DataError):
    """Some frames of a cine or video could not be read; ``frames`` is "segmented/declared"."""

    def __init__(self, message: str, frames: str) -> None:
        super().__init__(message)
        self.frames = frames


def summary_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> Table:
    t = Table(title=f"btseg-predict: {info['backend']} {info['target']}/{info['precision']} on "
                    f"{info['device']} (runs {info['inference_precision']})")
    for col in ("input", "frames (done/declared)", "lesion (presence)", "area px", "area mm²", "confidence", "p50 ms",
                "status"):
        t.add_column(col, justify="left" if col in ("input", "status") else "right")
    for r in rows:
        t.add_row(r["input"], str(r["frames"]), r.get("lesion", "-"), r.get("area", "-"), r.get("mm2", "-"),
                  r.get("conf", "-"), r.get("ms", "-"), r["status"])
    return t


def predict_one(item: InputItem, segmenter: Any, out: Path, overlay: bool, spacing: float | None,
                backend: dict[str, Any], as_json: bool, policy: OutputPolicy, limits: Limits,
                where: dict[str, Any] | None = None, dicom: Any = None,
                run: OutputRun | None = None) -> dict[str, Any]:
    """Segment every frame of one input; returns its summary row (raises BtsegError).
    ``where``: ``roi`` and ``allow_modalities`` (see btseg.runtime.regions / dicom_meta);
    ``dicom``: write a SEG and SR per frame (:class:`btseg.dicom.writer.DicomOutputs`);
    ``run``: the --out lock and journal (stops between frames once a signal arrived)."""
    where = where or {}
    recs, bad, declared = [], [], None
    if dicom is not None:  # before any pixel is read or any file written
        dicom.check_input(item.path, kind_of(item.path, limits))
    for frame in iter_frames(item.path, where.get("allow_modalities"), limits, errors="yield"):
        if run is not None and run.stopping.is_set():
            raise DataError(f"{item.path}: interrupted before frame {frame.index}")
        declared = frame.declared
        if frame.error:  # a missing or corrupt cine / video frame: named, never segmented
            bad.append(frame.error)
            if as_json:
                click.echo(json_text({"name": frame.name, "input": frame.source, "frame": frame.index,
                                      "frames_declared": frame.declared, "error": frame.error}, indent=None, strict=True))
            continue
        seg = segmenter.segment(frame, spacing if frame.spacing_mm is None else None, roi=where.get("roi"))
        rec = save_outputs(frame, seg, out / item.subdir, overlay, backend, policy, dicom,
                           run.journal if run else None)
        recs.append(rec)
        if as_json:
            click.echo(json_text(rec, indent=None, strict=True))
    frames = f"{len(recs)}/{declared}" if declared is not None else str(len(recs))
    if bad:
        raise FrameErrors(f"{item.path}: {len(bad)} of {declared or len(bad) + len(recs)} declared frame(s) failed, "
                          f"{len(recs)} segmented; " + "; ".join(b.removeprefix(f"{item.path}: ") for b in bad[:5])
                          + (f"; ... {len(bad) - 5} more" if len(bad) > 5 else ""), frames)
    areas = [r["area_px"] for r in recs]
    mm2 = [r["area_mm2"] for r in recs if r["area_mm2"] is not None]
    present = sum(bool(r["lesion_present"]) for r in recs)
    lesion = ("yes" if present else "no") if len(recs) == 1 else f"{present} of {len(recs)} frames"
    return {"input": str(item.path), "frames": frames, "status": "ok",
            "lesion": f"{lesion} ({max(r['presence'] for r in recs):.2f})" if recs else "-",
            "area": f"{statistics.median(areas):.0f}", "mm2": f"{statistics.median(mm2):.1f}" if mm2 else "-",
            "conf": f"{statistics.mean(r['confidence'] for r in recs):.3f}",
            "ms": f"{statistics.median(r['timings']['total_ms'] for r in recs):.1f}"}


@click.command(context_settings=HELP)
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--model", "-m", default=None, type=click.Path(path_type=Path),
              help="Model package directory. Default: the bundled model (synthetic phantoms; not for clinical use).")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", *BACKENDS]))
@click.option("--target", default=None, type=click.Choice(list(TARGET_NAMES)),
              help="Artifact target (default: the fastest verified one).")
@click.option("--precision", default=None, type=click.Choice(PRECISIONS))
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda[:N], or an OpenVINO device (gpu, npu).")
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads.")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=None,
              help="Output folder; refused if it holds outputs of another run (see --overwrite).  "
                   "Default: ./predictions, or the first free predictions-2, -3, ... when that one is in use.")
@click.option("--overlay/--no-overlay", default=True, show_default=True, help="Write <stem>_overlay.png.")
@click.option("--overwrite", is_flag=True,
              help="Replace earlier btseg-predict outputs in --out (only files its records prove it wrote).")
@click.option("--resume", is_flag=True,
              help="Skip images whose outputs in --out are complete and unchanged; redo the rest (as --overwrite).")
@click.option("--spacing", type=float, default=None,
              help="mm per pixel for inputs that do not carry it (DICOM does).")
@click.option("--max-pixels", type=click.IntRange(1), default=None,
              help="Largest frame (width x height) read; default BTSEG_MAX_PIXELS or 50000000.")
@click.option("--max-file-mb", type=float, default=None,
              help="Largest input file in MB; default BTSEG_MAX_FILE_MB or 1024.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per frame on stdout.")
@click.option("--roi", default=None, metavar="X,Y,W,H|auto",
              help="Segment only this part of each image (auto: find the B-mode image on a screen capture). "
                   "DICOM ultrasound tissue regions are always used.")
@click.option("--allow-modality", "allow_modality", multiple=True, metavar="MODALITY",
              help="Also segment DICOM of this modality (e.g. CT); default: ultrasound only.")
@click.option("--any-modality", is_flag=True, help="Segment DICOM of any modality.")
@click.option("--streams", type=click.IntRange(1), default=1, show_default=True,
              help="Inference streams (OpenVINO THROUGHPUT streams / ONNX Runtime sessions); inputs are "
                   "decoded, segmented and written on streams+1 threads (btseg.runtime.pipeline).")
@click.option("--select", type=click.Choice(list(SELECT_MODES)), default="preference", show_default=True,
              help="Which artifact: the first usable in the preference order, or the fastest on this machine "
                   "(every candidate timed once, the choice cached; fastest-fresh re-measures).")
@click.option("--dicom", "dicom_out", is_flag=True,
              help="For each DICOM input also write <stem>_seg.dcm (DICOM Segmentation) and <stem>_sr.dcm "
                   "(TID 1500 measurement SR) into its study; a non-DICOM input is then an error. "
                   "Needs pip install 'btseg[dicom]'.")
@handle_errors
def main(inputs: tuple[Path, ...], model: Path, backend: str, target: str | None, precision: str | None,
         device: str, threads: int | None, out: Path, overlay: bool, overwrite: bool, spacing: float | None,
         max_pixels: int | None, max_file_mb: float | None, as_json: bool, roi: str | None,
         allow_modality: tuple[str, ...], any_modality: bool, streams: int, select: str, dicom_out: bool,
         resume: bool = False) -> None:
    """Segment INPUT... (images, DICOM, videos, folders or data sets of them) with a model package.

    With no INPUT and no --model, segments the bundled sample images with the bundled model.
    """
    from btseg import defaults
    from btseg.runtime.regions import parse_roi

    finite("--spacing", spacing, 0, low_open=True)
    if spacing is not None:
        from btseg.runtime.postprocess import normalize_spacing

        try:
            normalize_spacing(spacing)
        except BtsegError as e:
            raise ConfigError(f"--spacing {spacing:g}: {str(e).split(': ', 1)[-1]}") from e
    limits = Limits.resolve(max_pixels, finite("--max-file-mb", max_file_mb, 0, low_open=True))
    where = {"roi": parse_roi(roi), "allow_modalities": ("*",) if any_modality else allow_modality}

    if out is None:
        out = next_free(Path("predictions"))
        if out.name != "predictions":
            console.print(f"predictions/ holds an earlier run: writing to {out}/", highlight=False)
    if model is None:
        model = defaults.default_package()
    batch = discover(inputs or tuple(defaults.sample_images()))
    policy = OutputPolicy(out, batch, overwrite=overwrite or resume, package=model)
    if dicom_out:
        require_extra("btseg-predict --dicom", "dicom")  # exit 2 naming the extra, before the model is loaded
    policy.check_out()  # before --out is created
    with OutputRun(out) as run:  # lock, recover an interrupted run, writable: all before the model
        run.stop_on_signals()
        quiet_teardown()  # its outputs are committed by the time the process exits
        if run.recovered:
            console.print(f"removed {len(run.recovered)} unfinished output(s) of an interrupted run in {escape(str(out))}",
                          highlight=False, soft_wrap=True)
        if resume:
            done = [i for i in batch.items if policy.complete(i, overlay, dicom_out)]
            batch.items = [i for i in batch.items if i not in done]
            console.print(f"--resume: {len(done)} input(s) already complete in {escape(str(out))}, not run again",
                          highlight=False, soft_wrap=True)
        policy.plan(overlay, dicom_out)  # every output path checked before any work
        failed = _run(batch, policy, run, model, target, precision, backend, device, threads, select, streams, out,
                      overlay, spacing, as_json, limits, where, dicom_out)
    if failed:
        sys.exit(1)


def _run(batch: Any, policy: OutputPolicy, run: OutputRun, model: Path, target: str | None, precision: str | None,
         backend: str, device: str, threads: int | None, select: str, streams: int, out: Path, overlay: bool,
         spacing: float | None, as_json: bool, limits: Limits, where: dict[str, Any], dicom_out: bool) -> int:
    """Load the model and segment every input; the number of inputs that failed."""
    from btseg.runtime.pipeline import ordered_map
    from btseg.runtime.segmenter import Segmenter

    segmenter = Segmenter.load(model, target=target, precision=precision, backend=backend, device=device,
                               threads=threads, select=select, **({"streams": streams} if streams > 1 else {}))
    info = segmenter.info()
    if info["selection"]["mode"] == "fastest" and not as_json:
        ms = info["selection"]["median_ms"]
        console.print(f"selected {info['selection']['winner']} ({'cached choice' if info['selection']['cached'] else 'measured'}"
                      f"; median ms: {', '.join(f'{k} {v:.2f}' for k, v in ms.items())})", highlight=False, soft_wrap=True)
    dicom = None
    if dicom_out:
        from btseg.dicom.seg import ModelIdentity
        from btseg.dicom.writer import DicomOutputs

        dicom = DicomOutputs(ModelIdentity.from_info(info))
    backend_rec = {k: info[k] for k in ("backend", "target", "precision", "device", "inference_precision", "threads")}
    if batch.skipped:
        console.print(f"not inputs: {len(batch.skipped)} file(s) (ground-truth masks, earlier outputs), e.g. "
                      f"{escape(str(batch.skipped[0][0]))}: {batch.skipped[0][1]}", highlight=False, soft_wrap=True)
    rows: list[dict[str, Any]] = []
    failed = 0
    items = batch.items
    with Progress(console=console, transient=True, disable=len(items) < 2) as progress:
        task = progress.add_task("segmenting", total=len(items))
        work = lambda item: predict_one(item, segmenter, out, overlay, spacing, backend_rec, as_json,  # noqa: E731
                                        policy, limits, where, dicom, run)
        # decode, inference and writing of streams+1 inputs overlap; results (and errors) in input order
        results = ordered_map(work, items, workers=streams + 1)
        try:  # closed however the loop ends (a signal too): its workers finish before the journal is settled
            for item, result in results:
                failed += _collect(item, result, rows, progress)
                progress.advance(task)
        finally:
            results.close()
    console.print(summary_table(rows, info))
    console.print(f"{len(items) - failed} of {len(items)} inputs segmented, {failed} failed; outputs in {out}")
    return failed


def _collect(item: InputItem, result: Any, rows: list[dict[str, Any]], progress: Progress) -> int:
    """Add one input's summary row; 1 when it failed (named in one line), else 0."""
    try:
        if isinstance(result, Exception):
            raise result
        rows.append(result)
        return 0
    except (BtsegError, OSError, cv2.error) as e:  # a disk-full write or a decoder fault: this input only
        why = (e.strerror or str(e)) if isinstance(e, OSError) else str(e).strip().splitlines()[-1]
        msg = why if why.startswith(str(item.path)) else f"{item.path}: {why}"
        progress.console.print(f"[red]skipped[/red] {escape(msg)}", highlight=False, soft_wrap=True)
        rows.append({"input": str(item.path), "frames": getattr(e, "frames", "0"), "status": "failed"})
        return 1


if __name__ == "__main__":
    main()
