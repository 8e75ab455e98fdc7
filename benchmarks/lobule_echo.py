#!/usr/bin/env python
"""What the fat lobules' brightness decides: the demo's students on the hard-normal phantom
with another fat-lobule backscatter.

The hard-normal phantom draws a fat lobule's backscatter from
:data:`btseg.data.phantom_normals.LOBULE_ECHO`: 0.3-0.5 since 2026-12, isoechoic to the
subcutaneous fat layer (0.3 plus its ligaments) as a real lobule is; 0.08-0.3 before, as dark
as a benign lesion's core.  This script writes the same phantom (300 images, 256 px, seed 0,
hard normals, as ``btseg-demo``) and two sets of 100 held-out normals (seeds 1 and 2) with
``--echo LO,HI`` instead, trains the demo preset's teachers, dual-KD student and no-KD
student on it with ``btseg-distill``, and scores both students with
``benchmarks/heldout_normals.py`` (the one accuracy path).  Nothing else changes, so the
difference between two runs is this one trait.

Usage (benchmarks/results/lobule-echo.md: measured when 0.08-0.3 was the default; the darker
lobules are now the stress test, ``--echo 0.08,0.3``)::

    python benchmarks/lobule_echo.py --work /tmp/lobule-echo --echo 0.3,0.5 --out benchmarks/results/lobule-echo

Steps already done in ``--work`` are reused (the data when its ``phantom.json`` matches, a
package when it exists).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from btseg.data import phantom_normals  # noqa: E402


def _echo(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--echo {text!r}: expected LO,HI, e.g. 0.3,0.5") from None
    if not 0 < lo <= hi <= 5:
        raise argparse.ArgumentTypeError(f"--echo {text!r}: expected 0 < LO <= HI <= 5")
    return lo, hi


def make(out: Path, echo: tuple[float, float], n: int, size: int, seed: int,
         fractions: tuple[float, float, float] | None = None) -> Path:
    """The hard-normal phantom with lobule backscatter ``echo`` (reused when it was drawn so:
    the generator recorded in its phantom.json holds the brightness)."""
    from btseg.data import phantom, phantom_normals

    saved = phantom_normals.LOBULE_ECHO
    phantom_normals.LOBULE_ECHO = echo
    try:  # the override reaches spawned workers too (synthesize passes it on)
        phantom.ensure(out, n, size, seed, hard_normals=True, fractions=fractions or phantom.BUSI_FRACTIONS)
    finally:
        phantom_normals.LOBULE_ECHO = saved
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="data and runs (reused when re-run)")
    ap.add_argument("--echo", type=_echo, required=True, help="LO,HI backscatter inside a fat lobule (the "
                    "default phantom: %g,%g)" % phantom_normals.LOBULE_ECHO)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lobule-echo")
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--normals", type=int, default=100, help="held-out normals per set (two sets)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from btseg.layout import is_package

    w = args.work
    data = make(w / "data", args.echo, args.n, args.size, args.seed)
    sets = [make(w / f"normals-seed{s}", args.echo, args.normals, args.size, s, (0.0, 0.0, 1.0))
            for s in (args.seed + 1, args.seed + 2)]
    base = [sys.executable, "-m", "btseg.cli.distill"]
    common = ["--data", str(data), "--preset", args.preset, "--out", str(w / "run"), "--seed", str(args.seed),
              "--no-progress"]
    jobs = []
    if not is_package(w / "run" / "student-nokd"):  # independent of the teachers: beside them
        jobs.append(subprocess.Popen(base + ["student", *common, "--kd", "none", "--name", "student-nokd"]))
    if not is_package(w / "run" / "student"):
        subprocess.run(base + ["all", *common], check=True)
    for j in jobs:
        if j.wait():
            raise SystemExit(f"error: training student-nokd failed (exit {j.returncode})")
    from heldout_normals import measure, write

    title = (f"Fat lobules at backscatter {args.echo[0]:g}-{args.echo[1]:g} (the default phantom: "
             f"{phantom_normals.LOBULE_ECHO[0]:g}-{phantom_normals.LOBULE_ECHO[1]:g}): the demo's students, "
             f"{args.n} phantoms, seed {args.seed} split")
    command = "python " + " ".join(shlex.quote(a) for a in [f"benchmarks/{Path(__file__).name}",
                                                              *(argv if argv is not None else sys.argv[1:])])
    doc = measure(data, w / "run" / "splits.json", sets, [w / "run" / "student", w / "run" / "student-nokd"],
                  title, command)
    write({**doc, "lobule_echo": list(args.echo)}, args.out)
    return 0

if __name__ == "__main__":
    sys.exit(main())
