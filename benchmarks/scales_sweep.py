"""Which way to shrink the student: Dice lost per GMAC saved, width multipliers vs depth.

Trains Simplified U-Net variants (the paper widths 32..512 times a width multiplier, at depth
5 or 4) without KD, one seed, on the hard-normal phantom, and reports for each the lesion
Dice lost vs the full model (``w1.0``) per GMAC (256 px) saved.  The scales of
``btseg.models.simplified_unet.SCALES`` follow from its result (see README "Model scales").

    PYTHONPATH=. python benchmarks/scales_sweep.py --work scales-sweep-out
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import run_jobs  # noqa: E402

from btseg.cli.common import console, handle_errors  # noqa: E402
from btseg.io import read_json, write_json  # noqa: E402

PAPER = (32, 64, 128, 256, 512)


def widths(mult: float, depth: int) -> list[int]:
    """The paper widths times ``mult`` (multiples of 4, at least 4), first ``depth`` levels."""
    return [max(4, int(round(w * mult / 4)) * 4) for w in PAPER[:depth]]


CANDIDATES = {"w1.0": (1.0, 5), "w0.75": (0.75, 5), "w0.5": (0.5, 5), "w0.375": (0.375, 5),
              "d4w1.0": (1.0, 4), "d4w0.5": (0.5, 4)}


def base_cfg(size: int, epochs: int, steps: int, patience: int):
    """The demo preset at ``size`` px, capped steps, one thread, CPU."""
    from btseg.distill.config import get_preset

    return get_preset("demo").replace(image_size=size, epochs=epochs, max_steps_per_epoch=steps, patience=patience,
                                      threads=1, progress=False, device="cpu", val=0.15, test=0.2,
                                      min_epoch_samples=0, warmup_epochs=0.5)


def prepare(work: Path, n: int, size: int, seed: int = 0) -> Path:
    """WORK/data (the hard-normal phantom) and WORK/runs/splits.json, each made once."""
    from btseg.data import make_splits, open_dataset
    from btseg.data.phantom import ensure

    data = work / "data"
    if (s := ensure(data, n, size, seed, hard_normals=True, other="refuse")) is not None:
        console.print(f"data: {s['counts']} at {size} px -> {data}")
    split = work / "runs" / "splits.json"
    if not split.exists():
        split.parent.mkdir(parents=True, exist_ok=True)
        make_splits(open_dataset(data), val=0.15, test=0.2, seed=0).save(split)
    return data


@click.command()
@click.option("--work", type=click.Path(path_type=Path), default=Path("scales-sweep-out"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results/scales-sweep.json"))
@click.option("--n", type=int, default=240, show_default=True)
@click.option("--size", type=int, default=64, show_default=True)
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option("--steps", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@handle_errors
def main(work: Path, out: Path, n: int, size: int, epochs: int, steps: int, seed: int, workers: int) -> None:
    """Train every candidate (resumable) and write OUT with Dice lost per GMAC saved."""
    from btseg.bench.flops import count_macs
    from btseg.models import create_model

    prepare(work, n, 128)
    cfg0 = base_cfg(size, epochs, steps, patience=4)
    jobs = []
    for name, (m, d) in CANDIDATES.items():
        cfg = cfg0.replace(kd="none", seed=seed, student_kwargs={"widths": widths(m, d)})
        jobs.append({"name": name, "role": "student", "kd": "none", "teachers": None, "arch": "simplified_unet",
                     "seed": seed, "stage": "student", "kinds": [], "package": name, "needs": False,
                     "cfg": cfg.to_dict()})
    todo = [j for j in jobs if not (work / "results" / f"{j['name']}.json").exists()]
    if todo:
        run_jobs(todo, work, workers)
    rows = []
    for j in jobs:
        rec = read_json(work / "results" / f"{j['name']}.json")
        ws = j["cfg"]["student_kwargs"]["widths"]
        gm = count_macs(create_model("simplified_unet", widths=ws), (256, 256)) / 1e9
        rows.append({"name": j["name"], "widths": ws, "gmacs_256": round(gm, 4), "params": rec["params"],
                     "lesion_dice": rec["dice_lesion"], "val_dice": rec["val_dice"]})
    ref = next(r for r in rows if r["name"] == "w1.0")
    for r in rows:
        saved = ref["gmacs_256"] - r["gmacs_256"]
        r["dice_lost_per_gmac_saved"] = (ref["lesion_dice"] - r["lesion_dice"]) / saved if saved > 0 else None
    cmd = (f"PYTHONPATH=. python benchmarks/scales_sweep.py --work {work} --out {out} --n {n} --size {size} "
           f"--epochs {epochs} --steps {steps} --seed {seed} --workers {workers}")
    write_json(out, {"command": cmd, "rows": rows})
    for r in rows:
        console.print(r)


if __name__ == "__main__":
    main()
