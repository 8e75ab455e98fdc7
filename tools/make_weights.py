"""Release tooling: re-make the bundled default model and samples in ``btseg/assets``.

``make weights`` runs this. It is not part of the installed package (a wheel must never
rewrite its own files); it trains the teachers and the dual-KD student with the demo's fixed
seed (:mod:`btseg.cli.demo`'s data/train/export steps), then copies the student package and a
few test images into ``btseg/assets`` and records the package's Dice on them, which
``tests/test_defaults.py`` re-checks.

    python tools/make_weights.py [--out demo-out] [--fresh]
    python tools/make_weights.py --reexport      # same weights, artifacts re-exported

``--reexport`` keeps the bundled weights and model.json byte for byte and only rebuilds the
artifacts (after an exporter or recipe change): the demo data are regenerated with the same
seed, the weights are exported, calibrated (64 images) and verified in a staging package, and
the new artifacts and manifest replace the old ones; ``btseg-check`` then re-hashes them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

from btseg import defaults
from btseg.cli.common import console, handle_errors
from btseg.cli.demo import export, make_data, step
from btseg.cli.demo_report import NOT_CLINICAL
from btseg.cli.demo_training import MODELS, train
from btseg.layout import CONFIG, WEIGHTS, manifest_path, weights_path
from btseg.specs import PRECISIONS


def bundle(run: Path, data: Path, n_samples: int = 12) -> None:
    """Copy the student package and a few test images into btseg/assets; record its Dice there."""
    from btseg.data import Splits, open_dataset
    from btseg.data.splits import splits_path
    from btseg.package import load_package

    ds = open_dataset(data)
    test = Splits.load(splits_path(run)).select(ds, "test")
    dest_pkg, dest_samples = defaults.DEFAULT_PACKAGE, defaults.SAMPLES
    shutil.rmtree(dest_pkg, ignore_errors=True)
    shutil.rmtree(dest_samples, ignore_errors=True)
    shutil.copytree(run / "student", dest_pkg, ignore=shutil.ignore_patterns("train", ".*"))
    per_label = {"benign": n_samples // 2, "malignant": n_samples // 3, "normal": n_samples - n_samples // 2 - n_samples // 3}
    for lab, k in per_label.items():
        for s in [s for s in test if s.label == lab][:k]:
            for f in (s.path, *s.mask_paths):
                (dest_samples / lab).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest_samples / lab / Path(f).name)
    pkg = load_package(dest_pkg)
    pkg.config.notes = NOT_CLINICAL
    pkg.config.metrics["bundled_samples"] = bundled_dice(dest_pkg, dest_samples)
    pkg.write_config()
    console.print(f"bundled: {dest_pkg} ({sum(f.stat().st_size for f in dest_pkg.rglob('*') if f.is_file()) / 1e6:.1f} MB),"
                  f" {dest_samples}; Dice on the samples {pkg.config.metrics['bundled_samples']}")


def reexport(data: Path, stage: Path) -> None:
    """Rebuild the bundled package's artifacts from its unchanged weights (see the module docstring)."""
    import hashlib
    import json

    from btseg.export import run_export
    from btseg.cli.tables import export_results as results_table
    from btseg.package_check import check_package

    dest = defaults.DEFAULT_PACKAGE
    weights = weights_path(dest).read_bytes()  # never written here: the export runs in `stage`
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for f in (CONFIG, WEIGHTS):
        shutil.copy2(dest / f, stage / f)
    done = run_export(stage, ["onnx", "openvino"], list(PRECISIONS), calib_data=data, calib_size=64,
                      verify_n=32)
    console.print(results_table(done))
    manifest = json.loads(manifest_path(stage).read_text())
    if any(a["status"] != "ok" for a in manifest["artifacts"]):
        raise SystemExit("reexport: an artifact failed; the bundled package is left as it was")
    old = json.loads(manifest_path(dest).read_text())
    for a in old["artifacts"]:  # the old artifacts' files, then the new ones in their place
        for f in a.get("files", [{"file": a["file"]}]):
            (dest / f["file"]).unlink(missing_ok=True)
    for d in [p for p in dest.iterdir() if p.is_dir() and not any(p.iterdir())]:
        d.rmdir()
    for a in manifest["artifacts"]:
        for f in a["files"]:
            (dest / f["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(stage / f["file"], dest / f["file"])
    shutil.copy2(manifest_path(stage), manifest_path(dest))
    report = check_package(dest)
    if not report.ok:
        raise SystemExit(f"reexport: btseg-check refuses the new bundle: {report.errors}")
    console.print(f"reexport: {dest}: weights sha256 {hashlib.sha256(weights).hexdigest()[:12]} unchanged; "
                  f"btseg-check ok ({len(report.rows)} rows)")


def bundled_dice(pkg_dir: Path, samples_dir: Path) -> dict[str, Any]:
    """Dice of the package's torch FP32 path on the bundled samples (what a test re-checks)."""
    from btseg.data import open_dataset
    from btseg.metrics import MetricAccumulator
    from btseg.runtime import Segmenter

    seg = Segmenter.load(pkg_dir, backend="torch", threads=1)
    acc = MetricAccumulator(distances=False)
    for s in open_dataset(samples_dir):
        acc.add(seg.segment(s.image).mask, s.mask, s.label)
    return {"backend": "torch", "precision": "fp32", "dice": round(acc.mean("dice"), 4), "n": len(acc.rows)}


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-out"), show_default=True)
@click.option("--preset", default="demo", show_default=True)
@click.option("--n", "n_images", type=click.IntRange(12), default=300, show_default=True)
@click.option("--size", type=click.IntRange(64), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Redo every step, even those whose outputs exist.")
@click.option("--reexport", "reexport_only", is_flag=True, help="Keep the bundled weights; rebuild only its artifacts.")
@handle_errors
def main(out: Path, preset: str, n_images: int, size: int, seed: int, fresh: bool, reexport_only: bool) -> None:
    """Train + export the default student with the demo's seed, then refresh btseg/assets."""
    t0 = time.perf_counter()
    run = out / "run"
    step("1/3 data")
    data = make_data(out, n_images, size, seed, fresh)
    if reexport_only:
        step("2/2 re-export the bundled weights")
        reexport(data, out / "reexport")
        console.print(f"make weights --reexport: {(time.perf_counter() - t0) / 60:.1f} min")
        return
    step("2/3 teachers and student")
    train(data, run, preset, seed, fresh, only=MODELS[:3])  # only what is bundled
    step("3/3 export and bundle")
    export(run, data, fresh)
    bundle(run, data)
    console.print(f"make weights: {(time.perf_counter() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
