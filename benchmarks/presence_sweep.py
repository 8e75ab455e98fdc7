"""What lowers the student's false lesions on hard normals?  Training variants, several seeds.

Writes the hard-normal phantom (300 images, 256 px, seed 0, as ``btseg-demo``), then for
every seed trains the demo preset's models with ``btseg-distill`` and counts, per variant,
the validation and test images the package's presence decision gets right or wrong, pooled
over seeds with Wilson 95% intervals (:func:`btseg.stats.proportion_ci`).  Each seed has its
own split, so the pooled counts cover more normal images than one demo split (8).

Two designs (``--stage``):

``student``  the two teachers once per seed (default options), then one student per variant
             from them (``btseg-distill student --teacher-dir``): variants that change only
             the student;
``all``      teachers and student per variant and seed (``btseg-distill all``): variants
             that change every model's training (e.g. ``--presence-weight``).

A variant is ``NAME=OPTIONS`` (options of ``btseg-distill``), e.g.
``base=`` / ``nr3=--normal-repeat 3`` / ``e40=--epochs 40``.  Runs go ``--jobs`` at a time
(on a GPU, many: each is small); finished packages are reused when re-run.

Usage (the H200 run of benchmarks/results/presence-sweep-h200.md)::

    python benchmarks/presence_sweep.py --work /tmp/sweep --device cuda --jobs 12 --stage student \\
        --variants "base=" "nr3=--normal-repeat 3" "nr3pw=--normal-repeat 3 --presence-weight 0.5" \\
        "e40=--epochs 40" --results benchmarks/results/presence-sweep-h200
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from btseg.cli.demo_report import lesion_columns  # noqa: E402
from btseg.io import atomic_write, read_json, write_json  # noqa: E402
from btseg.layout import config_path, is_package  # noqa: E402
from btseg.stats import proportion_ci  # noqa: E402


def _distill(args: list[str], log: Path) -> None:
    cmd = [sys.executable, "-m", "btseg.cli.distill", *args, "--no-progress"]
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}; see {log}")


def _row(pkg: Path) -> dict[str, Any]:
    """Val and test presence counts and lesion Dice of one package, from its model.json."""
    cfg = read_json(config_path(pkg))
    out: dict[str, Any] = {"seconds": cfg["training"].get("seconds"), "epochs_run": cfg["training"].get("epochs_run")}
    for part in ("val", "test"):
        m = cfg["metrics"][part]
        out[part] = {"lesion_dice": lesion_columns(m)[0], "lesion": m["presence"]["lesion"],
                     "normal": m["presence"]["normal"]}
    return out


def _pool(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("val", "test"):
        k = sum(r[part]["normal"]["flagged"] for r in rows)
        n = sum(r[part]["normal"]["n"] for r in rows)
        d = sum(r[part]["lesion"]["detected"] for r in rows)
        nl = sum(r[part]["lesion"]["n"] for r in rows)
        dice = [r[part]["lesion_dice"] for r in rows]
        mean = sum(dice) / len(dice)
        sd = (sum((x - mean) ** 2 for x in dice) / max(1, len(dice) - 1)) ** 0.5
        out[part] = {"normal_flagged": k, "normal_n": n, "normal_ci95": proportion_ci(k, n) if n else None,
                     "lesion_detected": d, "lesion_n": nl, "lesion_ci95": proportion_ci(d, nl) if nl else None,
                     "lesion_dice_mean": mean, "lesion_dice_sd": sd}
    return out


def markdown(doc: dict[str, Any]) -> str:
    ran = ([f"Ran as: {doc['ran_as']}", "", f"The same runs through this script: `{doc['command']}`"]
           if doc.get("ran_as") else [f"Command: `{doc['command']}`"])
    lines = [f"# {doc['title']}", "", *ran, "", f"Machine: {doc['machine']}.", "",
             "Pooled over seeds (each seed its own split); Wilson 95% intervals.", "",
             "| variant | options | val normals flagged | test normals flagged | test lesions detected "
             "| test lesion Dice (mean ± sd over seeds) |", "|---|---|---|---|---|---|"]
    for name, v in doc["variants"].items():
        p = v["pooled"]

        def kn(b: dict, key: str) -> str:
            lo, hi = b[f"{key}_ci95"] or (float("nan"),) * 2
            return f"{b[f'{key}_flagged' if key == 'normal' else f'{key}_detected']} of {b[f'{key}_n']} " \
                   f"[{lo:.2f}, {hi:.2f}]"
        lines.append(f"| {name} | `{v['options'] or '(defaults)'}` | {kn(p['val'], 'normal')} | "
                     f"{kn(p['test'], 'normal')} | {kn(p['test'], 'lesion')} | "
                     f"{p['test']['lesion_dice_mean']:.3f} ± {p['test']['lesion_dice_sd']:.3f} |")
    lines += ["", "Per seed (test): " + "; ".join(
        f"{name} " + ", ".join(f"s{s}: {r['test']['normal']['flagged']}/{r['test']['normal']['n']} normals, "
                               f"{r['test']['lesion']['detected']}/{r['test']['lesion']['n']} lesions"
                               for s, r in v["per_seed"].items()) for name, v in doc["variants"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="data and runs (reused when re-run)")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "presence-sweep",
                    help="prefix of the .json and .md written")
    ap.add_argument("--variants", nargs="+", default=["base="], help="NAME=OPTIONS, see the module docstring")
    ap.add_argument("--stage", choices=("student", "all"), default="student")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--preset", default="demo")
    ap.add_argument("--n", type=int, default=300, help="phantom images (hard normals, seed 0)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--title", default="Presence sweep: false lesions on hard normals, by training variant")
    args = ap.parse_args(argv)
    from btseg.bench.sysinfo import collect, short
    from btseg.cli.demo import make_data

    variants = dict(v.split("=", 1) if "=" in v else (v, "") for v in args.variants)
    seeds = [int(s) for s in args.seeds.split(",")]
    data = make_data(args.work, args.n, args.size, 0, fresh=False, hard_normals=True)
    common = ["--data", str(data), "--preset", args.preset, "--device", args.device, "--threads", "1"]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        if args.stage == "student":  # shared teachers first
            tdirs = {s: args.work / "teachers" / f"s{s}" for s in seeds}
            list(pool.map(lambda s: is_package(tdirs[s] / "teacher-malignant") or _distill(
                ["teachers", *common, "--seed", str(s), "--out", str(tdirs[s])], args.work / f"teachers-s{s}.log"),
                seeds))
        jobs = []
        for name, opts in variants.items():
            for s in seeds:
                out = args.work / "runs" / f"{name}-s{s}"
                if is_package(out / "student"):
                    continue
                extra = ["--teacher-dir", str(tdirs[s])] if args.stage == "student" else []
                jobs.append(([args.stage, *common, "--seed", str(s), "--out", str(out), *extra, *shlex.split(opts)],
                             args.work / f"{name}-s{s}.log"))
        list(pool.map(lambda j: _distill(*j), jobs))
    doc: dict[str, Any] = {"title": args.title, "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
                           "machine": short(collect()), "stage": args.stage, "seeds": seeds,
                           "seconds": round(time.perf_counter() - t0, 1), "variants": {}}
    for name, opts in variants.items():
        per = {s: _row(args.work / "runs" / f"{name}-s{s}" / "student") for s in seeds}
        doc["variants"][name] = {"options": opts, "per_seed": per, "pooled": _pool(list(per.values()))}
    args.results.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.results.with_suffix(".json"), doc)
    with atomic_write(args.results.with_suffix(".md"), "w") as f:
        f.write(markdown(doc))
    print(markdown(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
