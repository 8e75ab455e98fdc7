"""``btseg-export``: a model package -> verified ONNX / OpenVINO / TensorRT artifacts.

Examples::

    btseg-export runs/demo/student --target onnx --precision fp32
    btseg-export runs/demo/student --target all --precision fp32 --precision fp16 --precision int8 \\
        --calib-data data/phantom --calib-size 64 --calib-method entropy
    btseg-export runs/demo/student --target openvino --precision int8 --calib-data data/busi --out dist/cart
    btseg-export pkg --target tensorrt --precision int8 --from-onnx pkg/student-int8.onnx   # on a Jetson

Exit codes: 0 every requested artifact built and verified (``skipped`` targets of
``--target all``, e.g. TensorRT without a GPU, do not count); 2 bad input or a failed
target/verification (one ``error:`` line after the results table), a package that fails
its integrity checks, disk full / ``ulimit -f`` / permission errors, or ``--out`` pointing
into the installed bundled assets.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

import click
from rich.console import Console

from btseg.cli.common import HELP, handle_errors, quiet_teardown, requires_extra
from btseg.errors import BtsegError
from btseg.export.targets import TARGETS
from btseg.specs import CALIB_METHODS, PRECISIONS



def _stdout() -> Console:
    """The results table goes to stdout (wide when piped, so reasons stay on one line)."""
    return Console(width=None if sys.stdout.isatty() else 160)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    click.echo(f"warning: {message}", err=True)


@click.command(context_settings=HELP)
@click.argument("package_dir", required=False, type=click.Path(path_type=Path))
@click.option("--target", "-t", "targets", multiple=True, default=("onnx",), show_default=True,
              help=f"{'|'.join(TARGETS)}|all; repeatable.")
@click.option("--precision", "-p", "precisions", multiple=True, default=("fp32",), show_default=True,
              help=f"{'|'.join(PRECISIONS)}|all; repeatable.")
@click.option("--calib-data", type=click.Path(path_type=Path), help="INT8 calibration images (dataset dir or image folder).")
@click.option("--calib-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--calib-method", default="minmax", show_default=True, help="|".join(CALIB_METHODS))
@click.option("--input-size", nargs=2, type=int, help="H W of the exported input (default: the package's).")
@click.option("--dynamic-batch", is_flag=True, help="Dynamic batch dimension (default: static batch 1).")
@click.option("--opset", type=int, help="ONNX opset (17 up to the installed onnx's newest; default 18).")
@click.option("--workspace", "workspace_gib", type=float, help="TensorRT workspace limit in GiB.")
@click.option("--from-onnx", type=click.Path(path_type=Path), help="Build TensorRT from this ONNX (on the board).")
@click.option("--out", type=click.Path(path_type=Path),
              help="Write a new package here (weights + config copied). Default with no PACKAGE_DIR: ./btseg-export.")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Verify every artifact against PyTorch.")
@click.option("--no-verify-gate", is_flag=True, help="A failed verification marks the artifact failed but exits 0.")
@click.option("--verify-data", type=click.Path(path_type=Path), help="Verification images (default: --calib-data).")
@click.option("--verify-n", type=click.IntRange(1), default=32, show_default=True)
@click.option("--skip-bad", is_flag=True, help="Leave bad items of --calib-data / --verify-data out (each named "
              "once); default: refuse, naming every bad item.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="KEY=VALUE",
              help="Override a verification gate, e.g. fp16=0.99, int8=0.98; repeatable.")
@handle_errors
@requires_extra("btseg-export", "train")
def main(package_dir: Path, targets: tuple[str, ...], precisions: tuple[str, ...], calib_data: Path | None,
         calib_size: int, calib_method: str, input_size: tuple[int, int] | None, dynamic_batch: bool,
         opset: int | None, workspace_gib: float | None, from_onnx: Path | None, out: Path | None,
         verify: bool, no_verify_gate: bool, verify_data: Path | None, verify_n: int, skip_bad: bool,
         tolerances: tuple[str, ...]) -> None:
    """Export PACKAGE_DIR to ONNX / OpenVINO / TensorRT at FP32 / FP16 / INT8, verify every artifact
    against PyTorch FP32, and record it in PACKAGE_DIR/manifest.json (or --out's).

    With no PACKAGE_DIR: the bundled model, calibrated and verified on the bundled samples,
    written to a new package in ./btseg-export (the installed package is never modified)."""
    from btseg import defaults
    from btseg.cli.tables import export_results as results_table
    from btseg.export import run_export

    _check_opset(opset)
    if package_dir is None:
        package_dir = defaults.default_package()
        out = out or Path("btseg-export")
        calib_data = calib_data or defaults.samples_dir()
    from btseg.export.options import ExportOptions
    from btseg.data.problems import SkippedFilesWarning
    from btseg.export.quantize import FewImagesWarning

    options = ExportOptions(targets=targets, precisions=precisions, calib_data=calib_data, calib_size=calib_size,
                            calib_method=calib_method, input_size=input_size or None, dynamic_batch=dynamic_batch,
                            opset=opset, workspace_gib=workspace_gib, from_onnx=from_onnx, out=out, verify=verify,
                            verify_gate=not no_verify_gate, verify_data=verify_data, verify_n=verify_n,
                            tolerances=list(tolerances), skip_bad=skip_bad)

    logging.getLogger("btseg").addHandler(_stderr_handler())
    from btseg.export import interrupt

    interrupt.install()  # a signal stops at once, staging removed; never mid-install
    quiet_teardown()  # ... and is ignored once the process is exiting
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ulimit -f: an EFBIG error line, not a killed process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("always", FewImagesWarning)
        warnings.simplefilter("default", SkippedFilesWarning)  # each skipped set named once
        warnings.showwarning = _show_warning
        try:
            results = run_export(package_dir, options=options)
        except BtsegError as e:
            if getattr(e, "results", None):
                _stdout().print(results_table(e.results))
            raise
    _stdout().print(results_table(results))


def _check_opset(opset: int | None) -> None:
    """ConfigError unless ``opset`` is one the installed onnx (and so the exporter) can write."""
    if opset is None:
        return
    import onnx

    from btseg.errors import ConfigError
    from btseg.export.targets import DEFAULT_OPSET, MIN_OPSET

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"--opset {opset}: expected {MIN_OPSET}..{newest} (onnx {onnx.__version__} writes up to "
                          f"{newest}; default {DEFAULT_OPSET})")


def _stderr_handler() -> logging.Handler:
    h = logging.StreamHandler()
    h.setFormatter(logging.Formatter("warning: %(message)s"))
    h.setLevel(logging.WARNING)
    return h
