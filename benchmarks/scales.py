"""A student for every latency budget: every scale, with and without dual KD, on a measured
lesion-Dice-vs-latency curve.

One hard-normal phantom, one split and one pair of teachers are made once; then for every
seed, every Simplified U-Net scale (``btseg.contract.SCALES``: n, s, m, l) is trained with
``--kd dual`` and ``--kd none``, and the UNeXt and U-Net baselines without KD, all by the one
training loop (:func:`btseg.distill.pipeline.run`, through ``benchmarks/ablation.py``'s
resumable job runner), checkpoints chosen on val, scored once on test.

Latency is a property of the architecture, not of the weights: per architecture, the seed-0
package's weights go into a 256 px package, exported to ONNX and OpenVINO (FP32 and INT8,
calibrated on the phantom), and every artifact of every architecture is timed in one
round-robin run (:func:`btseg.bench.latency.time_interleaved`), inference p50.

Resumable: finished jobs (``WORK/results/<job>.json``), exports and the timing are kept.
``--reuse DIR`` takes a finished job from another work directory when its configuration is
identical (the scale sweep's no-KD seed-0 runs).

    PYTHONPATH=. python benchmarks/scales.py --work scales-out --reuse scales-sweep-out
    PYTHONPATH=. python benchmarks/scales.py --work scales-out --report-only
"""

from __future__ import annotations

import shutil
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation import run_jobs  # noqa: E402
from scales_sweep import base_cfg, prepare  # noqa: E402

from btseg.cli.common import console, handle_errors  # noqa: E402
from btseg.contract import SCALES  # noqa: E402
from btseg.errors import ConfigError  # noqa: E402
from btseg.io import read_json, write_json  # noqa: E402

CODE_PATHS = ["benchmarks/scales.py", "btseg/models/simplified_unet.py"]
BASELINES = {"unext": [8, 16, 64, 80, 128], "unet": [8, 16, 32, 64, 128]}  # make demo's baselines
BACKENDS = (("onnxruntime", "onnx", "fp32"), ("onnxruntime", "onnx", "int8"),
            ("openvino", "openvino", "fp32"), ("openvino", "openvino", "int8"))


@dataclass
class Study:
    """Everything that fixes the study's results (saved as ``WORK/study.json``)."""

    n: int = 240
    data_size: int = 128
    size: int = 64
    epochs: int = 5
    steps: int = 8
    patience: int = 5
    teacher_epochs: int = 6
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    scales: list[str] = field(default_factory=lambda: ["n", "l", "s", "m"])
    baselines: list[str] = field(default_factory=lambda: ["unext", "unet"])


def _job(name: str, cfg, role: str, kd: str | None, arch: str, scale: str | None, seed: int, **kw) -> dict:
    return {"name": name, "role": role, "kd": kd, "teachers": "routed" if kd == "dual" else None, "arch": arch,
            "scale": scale, "seed": seed, "stage": kw.get("stage", "student"), "kinds": kw.get("kinds", []),
            "package": name, "needs": kd == "dual", "cfg": cfg.to_dict()}


def plan(st: Study) -> list[dict[str, Any]]:
    """Teachers, then in start order (a study cut short keeps its key comparison whole): the
    first two scales (n, l: the issue's goal) for every seed, dual and none, then the baselines
    for every seed, then the other scales."""
    base = base_cfg(st.size, st.epochs, st.steps, st.patience)
    jobs = [_job(f"teacher-{k}", base.replace(seed=0, epochs=st.teacher_epochs, kd="none"), "teacher", None,
                 base.teacher_arch, None, 0, stage="teachers", kinds=[k]) for k in ("benign", "malignant")]

    def scales(which: list[str]) -> None:
        for seed in st.seeds:
            for scale in which:
                for kd in ("dual", "none"):
                    cfg = base.replace(seed=seed, kd=kd, student_kwargs={"widths": SCALES["simplified_unet"][scale]})
                    jobs.append(_job(f"student-{scale}-{kd}-s{seed}", cfg, "student", kd, "simplified_unet", scale,
                                     seed))

    scales(st.scales[:2])
    for seed in st.seeds:
        for arch in st.baselines:
            cfg = base.replace(seed=seed, kd="none", student_arch=arch, student_kwargs={"widths": BASELINES[arch]})
            jobs.append(_job(f"baseline-{arch}-s{seed}", cfg, "baseline", "none", arch, None, seed))
    scales(st.scales[2:])
    return jobs


def reuse_jobs(jobs: list[dict[str, Any]], work: Path, other: Path | None) -> list[str]:
    """Copy into ``work`` each job another work directory finished with the same configuration."""
    if other is None or not (other / "results").is_dir():
        return []
    found = {}
    for p in sorted((other / "results").glob("*.json")):
        rec = read_json(p)
        found.setdefault(repr(rec.get("cfg")), (p.stem, rec))
    done = []
    for j in jobs:
        dst = work / "results" / f"{j['name']}.json"
        hit = found.get(repr(j["cfg"]))
        if dst.exists() or hit is None:
            continue
        stem, rec = hit
        shutil.copytree(other / "runs" / stem, work / "runs" / j["name"], dirs_exist_ok=True)
        write_json(dst, {**rec, **{k: j[k] for k in ("name", "role", "kd", "arch", "seed")},
                         "reused_from": str(other / "results" / f"{stem}.json")})
        done.append(j["name"])
    return done


def arch_kwargs(st: Study) -> dict[str, tuple[str, list[int]]]:
    """Row key (``simplified_unet-n``..., ``unext``, ``unet``) -> (architecture, widths)."""
    out = {f"simplified_unet-{s}": ("simplified_unet", SCALES["simplified_unet"][s]) for s in st.scales}
    out.update({a: (a, BASELINES[a]) for a in st.baselines})
    return out


def latency_packages(st: Study, work: Path, data: Path) -> dict[str, Path]:
    """Per row key, a 256 px package of that architecture, exported to ONNX and OpenVINO, FP32
    and INT8 (calibrated on the phantom), made once under ``WORK/latency/<arch>-<widths>``.

    Latency depends on the graph, not on the weights' values: the weights are a seeded
    random init, so the exports can run while the models train."""
    import torch

    from btseg.export import run_export
    from btseg.models import create_model
    from btseg.layout import manifest_path
    from btseg.package import ModelConfig, load_package, save_package
    from btseg.preprocess import PreprocessSpec

    out = {}
    for key, (arch, widths) in arch_kwargs(st).items():
        dst = work / "latency" / f"{arch}-{'-'.join(map(str, widths))}"
        if not manifest_path(dst).exists() or len(load_package(dst).artifacts()) < len(BACKENDS):
            shutil.rmtree(dst, ignore_errors=True)
            torch.manual_seed(0)
            save_package(dst, create_model(arch, widths=widths).eval(),
                         ModelConfig(architecture=arch, kwargs={"widths": widths}, role="student", preset="latency",
                                     preprocess=PreprocessSpec(size=(256, 256))))
            console.print(f"latency: exporting {key} at 256 px")
            run_export(dst, ["onnx", "openvino"], ["fp32", "int8"], calib_data=str(data), calib_size=32, verify=False)
        out[key] = dst
    return out


def time_all(pkgs: dict[str, Path], iters: int, threads: int) -> dict[str, dict[str, Any]]:
    """Inference p50/p90 of every (architecture, backend, precision), round-robin in one run."""
    import numpy as np

    from btseg.bench import open_segmenter
    from btseg.bench.latency import time_interleaved

    frame = np.random.default_rng(0).integers(0, 256, (256, 256), dtype=np.uint8)
    calls = {}
    for key, pkg in pkgs.items():
        for backend, target, precision in BACKENDS:
            seg = open_segmenter(pkg, backend, target, precision, "cpu", threads)
            calls[f"{key}|{backend}-{precision}"] = (seg, frame, None)
    res = time_interleaved(calls, warmup=3, iters=iters, block=3)
    meta = res.pop("_meta")
    out: dict[str, dict[str, Any]] = {}
    for k, lat in res.items():
        key, col = k.split("|")
        out.setdefault(key, {})[col] = {"p50_ms": lat["infer"].p50_ms, "p90_ms": lat["infer"].p90_ms,
                                        "e2e_p50_ms": lat["e2e"].p50_ms}
    out["_meta"] = {**meta, "iters": iters, "threads": threads, "frame": [256, 256]}
    return out


def _key(rec: dict[str, Any]) -> str:
    return f"simplified_unet-{rec['scale']}" if rec.get("scale") else rec["arch"]


def document(st: Study, jobs: list[dict[str, Any]], work: Path, lat: dict[str, Any], cmd: str) -> dict[str, Any]:
    """scales.json: the issue's schema plus a per-(arch, scale, kd) summary."""
    from btseg.bench import sysinfo
    from btseg.bench.flops import count_macs, count_params
    from btseg.models import create_model
    from btseg.provenance import stamp

    rows, facts = [], {}
    for j in jobs:
        p = work / "results" / f"{j['name']}.json"
        if j["role"] == "teacher" or not p.exists():
            continue
        rec = read_json(p)
        kw = j["cfg"]["student_kwargs"]
        if _key(j) not in facts:
            m = create_model(j["arch"], **kw)
            facts[_key(j)] = (count_params(m), count_macs(m, (256, 256)) / 1e9)
        params, gm = facts[_key(j)]
        empty = rec.get("normal_empty_rate")
        rows.append({"arch": j["arch"], "scale": j["scale"], "kd": j["kd"], "seed": j["seed"], "params": params,
                     "gmacs_256": round(gm, 4), "lesion_dice": rec["dice_lesion"],
                     "normal_false_lesion": None if empty is None else 1.0 - empty,
                     "latency_ms": {c: v["p50_ms"] for c, v in lat.get(_key(j), {}).items()},
                     "dice": rec["dice"], "val_dice": rec["val_dice"], "epochs_run": rec.get("epochs_run"),
                     "train_seconds": rec.get("train_seconds"), "n_test": rec.get("n_test"),
                     **({"reused_from": rec["reused_from"]} if rec.get("reused_from") else {})})
    summary: dict[str, Any] = {}
    for r in rows:
        s = summary.setdefault(f"{r['arch']}|{r['scale'] or '-'}|{r['kd']}", {
            "arch": r["arch"], "scale": r["scale"], "kd": r["kd"], "params": r["params"],
            "gmacs_256": r["gmacs_256"], "latency_ms": r["latency_ms"], "lesion_dice": []})
        s["lesion_dice"].append(r["lesion_dice"])
        s.setdefault("nfl", []).append(r["normal_false_lesion"])
    for s in summary.values():
        d, nfl = s.pop("lesion_dice"), [x for x in s.pop("nfl") if x is not None]
        s.update(n_seeds=len(d), lesion_dice_mean=statistics.fmean(d),
                 lesion_dice_sd=statistics.stdev(d) if len(d) > 1 else None,
                 normal_false_lesion_mean=statistics.fmean(nfl) if nfl else None)
    goal = _n_vs_l(summary)
    sysi = sysinfo.collect()
    machine = {"cpu": sysinfo.short(sysi), "threads": lat.get("_meta", {}).get("threads"),
               "shared": "8 engineers' jobs and this study's own training ran alongside", "system": sysi}
    return {"command": cmd, "machine": machine, "study": asdict(st), "timing": lat.get("_meta"),
            "rows": rows, "summary": list(summary.values()), "n_vs_l": goal, "provenance": stamp(cmd, CODE_PATHS)}


def _n_vs_l(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The issue's goal: does the distilled n reach the l student's lesion Dice within 0.01?"""
    n, big = summary.get("simplified_unet|n|dual"), summary.get("simplified_unet|l|dual")
    if not n or not big:
        return None
    gap = big["lesion_dice_mean"] - n["lesion_dice_mean"]
    return {"n_dual": n["lesion_dice_mean"], "l_dual": big["lesion_dice_mean"], "gap": gap,
            "within_0.01": gap <= 0.01, "l_none": (summary.get("simplified_unet|l|none") or {}).get("lesion_dice_mean")}


def plot(doc: dict[str, Any], path: Path, backend: str = "openvino-int8") -> None:
    """Lesion Dice (mean, sd bars) vs measured p50 latency: one curve per KD setting, baselines as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for kd, style in (("dual", "o-"), ("none", "s--")):
        pts = sorted((s["latency_ms"].get(backend), s["lesion_dice_mean"], s["lesion_dice_sd"] or 0, s["scale"])
                     for s in doc["summary"] if s["arch"] == "simplified_unet" and s["kd"] == kd
                     and s["latency_ms"].get(backend) is not None)
        if pts:
            x, y, e, lab = zip(*pts)
            ax.errorbar(x, y, yerr=e, fmt=style, capsize=3, label=f"Simplified U-Net, KD {kd}")
            for xi, yi, li in zip(x, y, lab):
                ax.annotate(li, (xi, yi), textcoords="offset points", xytext=(4, 4))
    for s in doc["summary"]:
        if s["arch"] != "simplified_unet" and s["latency_ms"].get(backend) is not None:
            ax.errorbar([s["latency_ms"][backend]], [s["lesion_dice_mean"]], yerr=[s["lesion_dice_sd"] or 0],
                        fmt="^", capsize=3, label=f"{s['arch']} baseline (no KD)")
    ax.set_xlabel(f"p50 latency at 256 px, {backend}, {doc['machine'].get('threads')} threads (ms; machine in scales.json)")
    ax.set_ylabel("lesion Dice (test, mean ± sd over seeds)")
    ax.set_title("Scales: lesion Dice vs latency (hard-normal phantom)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _list(s: str, cast=str) -> list:
    try:
        return [cast(x) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise ConfigError(f"{s!r}: expected a comma list") from e


@click.command()
@click.option("--work", type=click.Path(path_type=Path), default=Path("scales-out"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True)
@click.option("--reuse", type=click.Path(path_type=Path), default=None, help="Another work dir to take identical jobs from.")
@click.option("--n", type=int, default=Study.n, show_default=True)
@click.option("--size", type=int, default=Study.size, show_default=True, help="Training side (px).")
@click.option("--epochs", type=int, default=Study.epochs, show_default=True)
@click.option("--steps", type=int, default=Study.steps, show_default=True, help="Steps per epoch.")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--scales", default="n,l,s,m", show_default=True)
@click.option("--baselines", default="unext,unet", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--iters", type=int, default=20, show_default=True, help="Timed calls per artifact.")
@click.option("--threads", type=int, default=2, show_default=True, help="Inference threads.")
@click.option("--report-only", is_flag=True)
@click.option("--code-note", default="", help="With --report-only: a sentence on the code the models were trained "
              "with (kept in scales.json), when it differs from this commit's.")
@click.option("--export-only", is_flag=True, help="Only make the 256 px latency exports (can run beside training).")
@handle_errors
def main(work: Path, out: Path, reuse: Path | None, n: int, size: int, epochs: int, steps: int, seeds: str,
         scales: str, baselines: str, workers: int, iters: int, threads: int, report_only: bool,
         export_only: bool, code_note: str = "") -> None:
    """Train, export and time every scale; write OUT/scales.json and OUT/scales.png."""
    st = Study(n=n, size=size, epochs=epochs, steps=steps, seeds=_list(seeds, int), scales=_list(scales),
               baselines=_list(baselines))
    bad = [s for s in st.scales if s not in SCALES["simplified_unet"]] + [b for b in st.baselines if b not in BASELINES]
    if bad:
        raise ConfigError(f"unknown scale/baseline {', '.join(bad)}; scales: {', '.join(SCALES['simplified_unet'])}; "
                          f"baselines: {', '.join(BASELINES)}")
    work.mkdir(parents=True, exist_ok=True)
    if not export_only:
        if (work / "study.json").exists() and read_json(work / "study.json") != asdict(st):
            raise ConfigError(f"{work}/study.json: made with other settings; use a new --work")
        write_json(work / "study.json", asdict(st))
    jobs = plan(st)
    data = prepare(work, st.n, st.data_size)
    if export_only:
        latency_packages(st, work, data)
        return
    if not report_only:
        got = reuse_jobs(jobs, work, reuse) if reuse else []
        if got:
            console.print(f"scales: reused {', '.join(got)} from {reuse}")
        todo = [j for j in jobs if not (work / "results" / f"{j['name']}.json").exists()]
        console.print(f"scales: {len(jobs) - len(todo)} of {len(jobs)} jobs done; {len(todo)} to run")
        if todo:
            run_jobs(todo, work, workers)
    lat_path = work / "latency.json"
    if lat_path.exists():
        lat = read_json(lat_path)
    elif report_only:
        lat = {}
    else:
        lat = time_all(latency_packages(st, work, data), iters, threads)
        write_json(lat_path, lat)
    cmd = (f"nice -n 15 env PYTHONPATH=. python benchmarks/scales.py --work {work} --out {out}"
           + (f" --reuse {reuse}" if reuse else "")
           + f" --n {n} --size {size} --epochs {epochs} --steps {steps} --seeds {seeds} --scales {scales}"
           f" --baselines {baselines} --workers {workers} --iters {iters} --threads {threads}")
    doc = document(st, jobs, work, lat, cmd)
    if code_note:
        doc["code_note"] = code_note
    write_json(out / "scales.json", doc)
    plot(doc, out / "scales.png")
    console.print(f"scales: wrote {out / 'scales.json'}, {out / 'scales.png'} ({len(doc['rows'])} rows)")


if __name__ == "__main__":
    main()
