"""The demo's data and students, then the presence measurement: is "no lesion" fixed?

Runs ``make demo``'s first two steps with its own functions (the hard-normal phantom, 300
images at 256 px, seed 0; the demo preset's teachers and its dual-KD student, plus the
same student without KD), writes the demo report's training section (``report.md``, with
the "lesion sensitivity" and "normal false-lesion rate (k of n)" columns), then measures
every presence rule on val and test (``benchmarks/presence.py``).  Re-running reuses
the models already trained (as ``make demo`` does).

Usage::

    nice -n 15 python benchmarks/presence_demo.py --out /tmp/presence-demo \\
        --results benchmarks/results/presence-demo
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click


@click.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("presence-demo"), show_default=True)
@click.option("--results", type=click.Path(path_type=Path), default=Path("benchmarks/results/presence-demo"),
              show_default=True, help="Prefix of the result files (.json, .md).")
@click.option("--n", "n_images", default=300, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--preset", default="demo", show_default=True)
@click.option("--models", default="teacher-benign,teacher-malignant,student,student-nokd", show_default=True)
def main(out: Path, results: Path, n_images: int, size: int, seed: int, preset: str, models: str) -> None:
    """Train the demo's models on the hard-normal phantom and measure the presence decision."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from presence import _measure, markdown

    from btseg.cli.demo import make_data
    from btseg.cli.demo_report import write_report
    from btseg.cli.demo_training import train, training_rows, training_table
    from btseg.data import open_dataset
    from btseg.io import atomic_write, write_json

    t0 = time.perf_counter()
    command = "nice -n 15 python " + " ".join(shlex.quote(a) for a in sys.argv)
    data = make_data(out, n_images, size, seed, fresh=False, hard_normals=True)
    trained = train(data, out / "run", preset, seed, fresh=False, only=tuple(models.split(",")))
    _, train_md = training_table(trained)
    counts = ", ".join(f"{k}: {v}" for k, v in open_dataset(data).counts().items())
    report = write_report(out, f"{n_images} synthetic phantoms at {size} px ({counts}), seed {seed}, hard normals, "
                               f"in `{data}`.", train_md, None, [], time.perf_counter() - t0,
                          train_rows=training_rows(trained))
    rules = {name: _measure(out / "run" / name, data, out / "run", 0.95)
             for name in trained if name.startswith("student")}
    res = {"command": command, "data": str(data), "per_class": open_dataset(data).counts(), "models": trained,
           "training_table_md": train_md, "presence_rules": rules, "seconds": round(time.perf_counter() - t0, 1)}
    results.parent.mkdir(parents=True, exist_ok=True)
    write_json(results.with_suffix(".json"), res)
    md = [f"# Presence decision on the hard-normal phantom ({preset} preset)", "", f"Command: `{command}`", "",
          "## Demo report, training section (test split)", "", train_md, ""]
    for name, r in rules.items():
        md += [f"## {name}: every rule, calibrated on val (target 95% of val lesion images), counted on val and "
               "test", "", markdown(r), ""]
    with atomic_write(results.with_suffix(".md")) as f:
        f.write("\n".join(md) + "\n")
    click.echo(f"{report}\n" + "\n".join(md))


if __name__ == "__main__":
    main()
