"""``make demo``: the whole toolkit end to end on synthetic data, and ``make weights``.

Steps (each skipped when its output already exists, unless ``--fresh``)::

    data      synthetic B-mode phantoms in the BUSI layout        OUT/data/
              + held-out normal phantoms (another seed), only     OUT/normals/
              for the false-lesion rate: 8 normal test images
              measure it in steps of 12.5 points
    train     benign + malignant teachers, student with dual KD,  OUT/run/teacher-*/,
              student without KD, U-Net and UNeXt baselines        OUT/run/student*/, baseline-*/
    export    student -> ONNX fp32/int8, OpenVINO fp32/fp16/int8,  OUT/run/student/manifest.json
              TensorRT where available; every artifact verified
    bench     every artifact + teachers + baselines side by side  OUT/bench/bench.{json,csv,md,png}
    report    tables, the Dice-vs-latency plot, sample overlays   OUT/report.md

``make weights`` (``tools/make_weights.py``, release tooling kept out of the wheel) runs the
data, train and export steps with the fixed seed and copies the student package and a few
test images into ``btseg/assets`` (the bundled default that ``btseg-predict``,
``btseg-export`` and ``btseg-bench`` use with no arguments).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from btseg.cli.common import HELP, handle_errors, requires_extra
from btseg.errors import BtsegError
from btseg.cli.demo_report import overlays, write_report
from btseg.cli.demo_training import MODELS, count_held_out_normals, train, training_rows, training_table
from btseg.cli.tables import print_bench
from btseg.io import write_json
from btseg.layout import MANIFEST, is_package
from btseg.specs import PRECISIONS

console = Console(stderr=True)
# tables go to stdout; when piped (make demo | tee) rich would squeeze them into 80 columns
out_console = Console(width=None if sys.stdout.isatty() else 200)


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def make_data(out: Path, n: int, size: int, seed: int, fresh: bool, hard_normals: bool = False,
              name: str = "data", fractions: tuple[float, float, float] | None = None) -> Path:
    """OUT/<name>: the phantom (reused when its phantom.json says it was made the same way,
    by today's generator: :func:`btseg.data.phantom.ensure`); ``fractions`` (benign,
    malignant, normal) default to BUSI's."""
    from btseg.data.phantom import BUSI_FRACTIONS, ensure

    data = out / name
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
    summary = ensure(data, n, size, seed, hard_normals=hard_normals, fractions=tuple(fractions or BUSI_FRACTIONS))
    if summary is None:
        console.print(f"{name}: reusing {data}")
    else:
        console.print(f"{name}: {summary['counts']} in {summary['seconds']:.1f} s -> {data}")
    return data


def export(run: Path, data: Path, fresh: bool) -> list[Any]:
    """The student to every target and precision available here; every other model (teachers,
    the no-KD student, baselines) to FP32 ONNX + OpenVINO, so the bench compares them backend
    by backend."""
    from btseg.export import run_export
    from btseg.cli.tables import export_results as results_table
    from btseg.package import load_package

    plans = [("student", ["all"], list(PRECISIONS))]
    plans += [(m, ["onnx", "openvino"], ["fp32"]) for m in MODELS if m != "student"]
    results: list[Any] = []
    for name, targets, precisions in plans:
        pkg = run / name
        if not is_package(pkg):
            continue
        if not fresh and load_package(pkg).artifacts():
            console.print(f"export: {name}: reusing the artifacts in {MANIFEST}")
            continue
        try:
            done = run_export(pkg, targets, precisions, calib_data=data, calib_size=64, verify_n=32)
        except BtsegError as e:
            # a failed artifact is reported (and marked failed in the manifest); the demo goes on
            done = getattr(e, "results", [])
            console.print(f"[red]export: {name}: {e}")
        out_console.print(f"[bold]{name}", results_table(done))
        results += done
    return results


def bench(run: Path, data: Path, out: Path, iters: int, memory: bool = True) -> dict[str, Any]:
    from btseg.bench import report, runner

    # only the backends installed here: a missing optional one (tensorrt) is not a demo failure
    cfg = runner.BenchConfig(models=[str(run / "student")], backends=runner.installed_backends(), data=str(data),
                             compare_teachers=True, iters=iters, memory=memory)
    result = runner.run(cfg, progress=lambda r: console.print(
        f"bench: {r.get('model')} {r.get('backend')} {r.get('precision')}: {r.get('status')}"))
    print_bench(result, out_console)
    report.write_all(out / "bench", result)
    return result

@click.command(context_settings=HELP)
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option("--preset", default="demo", show_default=True, help="Training preset (tiny for a smoke run).")
@click.option("--n", "n_images", type=click.IntRange(12), default=300, show_default=True, help="Synthetic images.")
@click.option("--size", type=click.IntRange(64), default=256, show_default=True, help="Synthetic image side (px).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--hard-normals/--plain-normals", default=True, show_default=True,
              help="Normal phantoms with lesion look-alikes (fat lobules, ducts, shadows), as real scans have.")
@click.option("--normals", "n_normals", type=click.IntRange(0), default=100, show_default=True,
              help="Held-out normal phantoms (another seed, in no split) on which every model's false-lesion "
                   "rate is also counted; 0 = none.")
@click.option("--iters", type=click.IntRange(5), default=100, show_default=True, help="Timed calls per bench row.")
@click.option("--fresh", is_flag=True, help="Redo every step, even those whose outputs exist.")
@click.option("--no-memory", is_flag=True, help="Skip the bench's per-row peak-memory subprocesses (faster).")
@handle_errors
@requires_extra("btseg-demo", "train")
def main(out: Path, preset: str, n_images: int, size: int, seed: int, hard_normals: bool, n_normals: int,
         iters: int, fresh: bool, no_memory: bool) -> None:
    """Run the whole toolkit end to end on synthetic data and write OUT/report.md."""
    from btseg.data import open_dataset
    from btseg.distill.config import get_preset

    get_preset(preset)  # an unknown preset is refused before minutes of data generation
    t0 = time.perf_counter()
    run = out / "run"
    step("1/5 data")
    data = make_data(out, n_images, size, seed, fresh, hard_normals)
    normals = make_data(out, n_normals, size, seed + 1, fresh, hard_normals, "normals", (0.0, 0.0, 1.0)) \
        if n_normals else None
    step("2/5 teachers and students")
    models = train(data, run, preset, seed, fresh, only=MODELS)
    if normals is not None:
        count_held_out_normals(models, run, normals)
    table, train_md = training_table(models)
    out_console.print(table)
    write_json(out / "results.json", models)
    step("3/5 export")
    export(run, data, fresh)
    step("4/5 bench")
    result = bench(run, data, out, iters, memory=not no_memory)
    step("5/5 report")
    cases = overlays(run, data, out)
    counts = ", ".join(f"{k}: {v}" for k, v in open_dataset(data).counts().items())
    seconds = time.perf_counter() - t0
    path = write_report(out, f"{n_images} synthetic phantoms at {size} px ({counts}), seed {seed}"
                        f"{', hard normals' if hard_normals else ''}, in `{data}`"
                        + (f"; {n_normals} held-out normal phantoms (seed {seed + 1}) in `{normals}`." if normals
                           else "."),
                        train_md, result, cases, seconds, train_rows=training_rows(models))
    console.print(f"[bold green]demo done in {seconds / 60:.1f} min[/]: {path}")


if __name__ == "__main__":
    main()
