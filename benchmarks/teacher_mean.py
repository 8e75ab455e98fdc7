"""Why ``--teachers mean`` collapses: what the student is asked to copy, measured.

For one run directory (two teacher packages + ``splits.json``), on its validation images,
at the network's resolution, this scores the KD *targets* themselves:

* Dice of each target's mask (logit > 0) against the ground truth, on benign and malignant
  images: the benign teacher, the malignant teacher, the routed target (the teacher of the
  image's class) and the mean target (``--teachers mean``: the mean of both teachers'
  logits, :func:`btseg.distill.losses.routed_targets`, the same code as training);
* the mean target's probability inside the lesion (how far it is from a confident "lesion");
* for feature KD, the per-channel correlation of the two teachers' features at every stage
  the student matches (channel c of one teacher vs channel c of the other): near 0 means the
  averaged feature map is a superposition of two unrelated codes, not a feature of either.

    PYTHONPATH=. python benchmarks/teacher_mean.py --run ablation-cv-out-64/cv/fold-0 \\
        --data ablation-cv-out-64/data --out benchmarks/results
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from btseg.cli.common import console, handle_errors  # noqa: E402
from btseg.io import atomic_write, write_json  # noqa: E402

CODE_PATHS = ["btseg/distill/losses.py", "btseg/distill/torchdata.py", "btseg/metrics.py", "btseg/models",
              "benchmarks/teacher_mean.py"]


@torch.no_grad()
def measure(run: Path, data: Path) -> dict[str, Any]:
    """Target Dice per class and teacher-feature correlations on ``run``'s validation split."""
    from btseg.data import Splits, open_dataset
    from btseg.data.splits import splits_path
    from btseg.distill.losses import LABEL_INDEX, routed_targets, teacher_weights
    from btseg.distill.torchdata import SegDataset
    from btseg.metrics import dice, reduce
    from btseg.package import load_package

    pkgs = [load_package(run / f"teacher-{k}") for k in ("benign", "malignant")]
    teachers = [p.build_model().eval() for p in pkgs]
    val = Splits.load(splits_path(run)).select(open_dataset(data, include_normal=True), "val")
    ds = SegDataset(val, pkgs[0].config.preprocess, augment=False)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.stack([ds[i][1] for i in range(len(ds))])[:, 0].numpy() > 0.5
    labels = torch.tensor([LABEL_INDEX[s] for s in val.labels])
    outs = {"benign teacher": teacher_weights(labels, "benign"), "malignant teacher": teacher_weights(labels, "malignant"),
            "routed target": teacher_weights(labels, "routed"), "mean target": teacher_weights(labels, "mean")}
    logits = {k: routed_targets(teachers, x, w, need_features=False)[0][:, 0].numpy() for k, w in outs.items()}
    res: dict[str, Any] = {"n_val": len(val), "dice": {}}
    for name, lg in logits.items():
        res["dice"][name] = {c: reduce(dice(lg[i] > 0, y[i]) for i in range(len(val)) if val.labels[i] == c)
                             for c in ("benign", "malignant")}
    p_mean = 1 / (1 + np.exp(-logits["mean target"]))
    inside = [float(p_mean[i][y[i]].mean()) for i in range(len(val)) if y[i].any()]
    res["mean_target_prob_inside_lesion"] = reduce(inside)
    # feature codes: channel c of the benign teacher against channel c of the malignant one
    fb = teachers[0].forward_features(x)[1]
    fm = teachers[1].forward_features(x)[1]
    corr = []
    for stage, (a, b) in enumerate(zip(fb, fm)):
        a = a.transpose(0, 1).flatten(1).numpy()  # (C, N*H*W)
        b = b.transpose(0, 1).flatten(1).numpy()
        a = (a - a.mean(1, keepdims=True)) / (a.std(1, keepdims=True) + 1e-8)
        b = (b - b.mean(1, keepdims=True)) / (b.std(1, keepdims=True) + 1e-8)
        r = (a * b).mean(1)
        corr.append({"stage": stage, "channels": int(a.shape[0]), "mean_abs_corr": round(float(np.abs(r).mean()), 4),
                     "mean_corr": round(float(r.mean()), 4)})
    res["feature_channel_corr"] = corr
    return res


def markdown(res: dict[str, Any], cmd: str) -> str:
    lines = ["# Why `--teachers mean` collapses: the KD targets scored", "", f"Reproduce: `{cmd}`", "",
             f"Validation images of the run: {res['n_val']}. Dice of each target's mask (logit > 0) against "
             "the ground truth, mean ± sd over images:", "", "| target | benign images | malignant images |",
             "|---|---|---|"]
    for name, d in res["dice"].items():
        lines.append(f"| {name} | {d['benign']['mean']:.3f} ± {d['benign']['std']:.3f} | "
                     f"{d['malignant']['mean']:.3f} ± {d['malignant']['std']:.3f} |")
    m = res["mean_target_prob_inside_lesion"]
    lines += ["", f"Mean target's probability inside the lesion: {m['mean']:.3f} ± {m['std']:.3f} "
              f"(n={m['n_valid']} lesion images).", "",
              "Teacher features, channel c of the benign teacher vs channel c of the malignant teacher "
              "(Pearson r over images and pixels, per channel):", "", "| stage | channels | mean abs r | mean r |",
              "|---|---|---|---|"]
    for c in res["feature_channel_corr"]:
        lines.append(f"| {c['stage']} | {c['channels']} | {c['mean_abs_corr']:.3f} | {c['mean_corr']:+.3f} |")
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--run", type=click.Path(path_type=Path, exists=True), required=True,
              help="A run (or CV fold) directory with teacher-benign/, teacher-malignant/ and splits.json.")
@click.option("--data", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("benchmarks/results"), show_default=True)
@handle_errors
def main(run: Path, data: Path, out: Path) -> None:
    """Score the mean and routed KD targets; write OUT/teacher-mean.{json,md}."""
    from btseg.provenance import stamp

    torch.set_num_threads(1)
    cmd = " ".join(["PYTHONPATH=.", "python", "benchmarks/teacher_mean.py", "--run", shlex.quote(str(run)),
                    "--data", shlex.quote(str(data)), "--out", shlex.quote(str(out))])
    res = measure(run, data)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "teacher-mean.json", {"provenance": stamp(cmd, CODE_PATHS), **res})
    with atomic_write(out / "teacher-mean.md") as f:
        f.write(markdown(res, cmd))
    console.print(markdown(res, cmd))


if __name__ == "__main__":
    main()
