"""``btseg-data``: synthesise, inspect and split datasets.

Examples::

    btseg-data synth --out phantom --n 300 --size 256 --seed 0
    btseg-data synth --out hard --n 300 --hard-normals
    btseg-data synth --out messy --n 60 --defects all      # every real-set defect, listed in phantom.json
    btseg-data inspect Dataset_BUSI_with_GT --json        # exit 1 when any item is bad
    btseg-data split Dataset_BUSI_with_GT --out splits.json --seed 0 --val 0.15 --test 0.15
    btseg-data split Dataset_BUSI_with_GT --out folds.json --kfold 5
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from btseg.cli.common import HELP, handle_errors, refuse_given
from btseg.errors import ConfigError
from btseg.data.layouts import LAYOUTS, open_dataset
from btseg.data.sample import LABELS
from btseg.data.splits import DUP_THRESHOLD, find_duplicates, kfold, make_splits, phash64

out = Console()  # tables go to stdout; errors and progress to stderr
_layout = click.option("--layout", type=click.Choice(("auto",) + LAYOUTS), default="auto", show_default=True)
_normal = click.option("--include-normal/--exclude-normal", default=True, show_default=True,
                       help="Keep images labelled normal (empty masks).")
_skip = click.option("--skip-bad", is_flag=True, help="Skip bad items (each named once, file and reason, and "
                     "recorded); default: refuse the data set, naming every bad item.")
_dup = click.option("--dup-threshold", type=int, default=DUP_THRESHOLD, show_default=True,
                    help="Max phash Hamming distance (of 64 bits) for near-duplicates; -1 disables.")


@click.group(context_settings=HELP)
def main() -> None:
    """Datasets for btseg: BUSI, Dataset B, plain folders and a synthetic phantom."""


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory.")
@click.option("--n", type=click.IntRange(1), default=300, show_default=True)
@click.option("--size", type=click.IntRange(32), default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=None, help="Processes (default: all cores).")
@click.option("--hard-normals", is_flag=True, help="Lesion look-alikes (fat lobules, ducts, rib/ligament "
              "shadows, edge darkening) on normal images (and a few on lesion images), as real scans have.")
@click.option("--overwrite", is_flag=True, help="Replace the phantom set already in --out (only one btseg wrote).")
@click.option("--defects", default="", metavar="LIST", help="Real-set defects, one item each: all, bad, good "
              "or a comma list (size_mismatch, stray_mask, mask_rgba, calipers...); listed in phantom.json.")
@handle_errors
def synth(out_dir: str, n: int, size: int, seed: int, workers: int | None, hard_normals: bool,
          overwrite: bool, defects: str) -> None:
    """Write a synthetic B-mode dataset in the BUSI layout."""
    import shutil

    from rich.progress import Progress

    from btseg.data.phantom import synthesize

    target = Path(out_dir)
    if target.exists() and any(target.iterdir()):
        # two sets in one folder would mix sizes and seeds under one phantom.json
        if not overwrite:
            raise ConfigError(f"{target}: not empty; pass --overwrite to replace the phantom set there, "
                              "or choose a new --out")
        if not (target / "phantom.json").is_file():
            raise ConfigError(f"{target}: not a btseg phantom set (no phantom.json); --overwrite replaces only "
                              "a set btseg wrote, never other files")
        shutil.rmtree(target)

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("synthesising", total=n)
        summary = synthesize(out_dir, n=n, size=size, seed=seed, workers=workers,
                             progress=lambda k: bar.advance(task, k), hard_normals=hard_normals,
                             defects=defects)
    c = summary["counts"]
    out.print(f"wrote {n} images ({c['benign']} benign, {c['malignant']} malignant, {c['normal']} normal; "
              f"{summary['multi_mask']} with two lesions) to {out_dir} in {summary['seconds']:.1f} s")
    for d in summary.get("defects", []):
        out.print(f"  defect {d['defect']}{' (bad item)' if d['bad'] else ''}: {', '.join(d['files'])}", markup=False)


def inspect_dataset(ds, dup_threshold: int) -> dict:
    """Everything ``inspect`` reports about the good items, as one JSON-ready dict (decodes
    every sample once; ``ds`` None when no item was usable)."""
    if ds is None:
        return {"n": 0, "counts": {k: 0 for k in LABELS}, "sizes": None, "coverage": {k: None for k in LABELS},
                "multi_mask": 0, "duplicates": {"threshold": dup_threshold, "n_groups": 0, "n_images": 0, "groups": []}}
    sizes, cover, multi, hashes = [], {k: [] for k in LABELS}, 0, []
    for s in ds:
        hashes.append(phash64(s.image))
        sizes.append(s.image.shape)
        cover[s.label].append(float(s.mask.mean()))
        multi += len(s.mask_paths) > 1
    hs, ws = np.array([h for h, _ in sizes]), np.array([w for _, w in sizes])
    uniq, cnt = np.unique(np.stack([hs, ws], 1), axis=0, return_counts=True)
    top = sorted(zip(cnt.tolist(), uniq.tolist()), reverse=True)[:5]
    dups = find_duplicates(ds, dup_threshold, np.array(hashes, np.uint64)) if dup_threshold >= 0 else []
    return {
        "layout": ds.layout, "root": str(ds.root), "n": len(ds), "counts": ds.counts(),
        "labels": "inferred" if ds.labels_inferred else "given",
        "multi_mask": multi,
        "sizes": {"min_hw": [int(hs.min()), int(ws.min())], "max_hw": [int(hs.max()), int(ws.max())],
                  "most_common": [{"hw": hw, "count": c} for c, hw in top]},
        "coverage": {k: ({"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)),
                          "empty": int(sum(x == 0 for x in v))} if v else None) for k, v in cover.items()},
        "duplicates": {"threshold": dup_threshold, "n_groups": len(dups), "n_images": sum(map(len, dups)),
                       "groups": [[ds.ids[i] for i in g] for g in dups]},
    }


@main.command()
@click.argument("root", type=click.Path())
@_layout
@_normal
@click.option("--skip-bad", is_flag=True, hidden=True, help="Accepted for compatibility: inspect always lists "
              "every problem and summarises the good items.")
@_dup
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@handle_errors
def inspect(root: str, layout: str, include_normal: bool, skip_bad: bool, dup_threshold: int, as_json: bool) -> None:
    """List every bad item, then summarise the good ones: counts per class, sizes, mask
    coverage, near-duplicates.  Exit 1 when there were bad items, 0 when the set is clean."""
    from btseg.data.layouts import scan

    ds, problems = scan(root, layout, include_normal=include_normal)
    info = {**inspect_dataset(ds, dup_threshold), "problems": [{"file": p, "reason": r} for p, r in problems]}
    info.setdefault("root", str(root))
    if as_json:
        click.echo(json.dumps(info))
    else:
        _print_inspect(info)
    if problems:
        sys.exit(1)


def _print_inspect(info: dict) -> None:
    if info["problems"]:
        out.print(f"{len(info['problems'])} bad item(s) (not used by any command unless --skip-bad):", markup=False)
        for p in info["problems"]:
            out.print(f"  {p['file']}: {p['reason']}", markup=False, soft_wrap=True)
    if not info["n"]:
        out.print(f"no usable item in {info['root']}", markup=False)
        return
    t = Table(title=f"{info['layout']} dataset at {info['root']}: {info['n']} good item(s)")
    for col in ("class", "images", "mask coverage mean", "min", "max", "empty masks"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for k in LABELS:
        c = info["coverage"][k]
        t.add_row(k, str(info["counts"][k]), *(("-",) * 4 if c is None else
                  (f"{c['mean']:.3f}", f"{c['min']:.3f}", f"{c['max']:.3f}", str(c["empty"]))))
    out.print(t)
    sz, d = info["sizes"], info["duplicates"]
    out.print(f"images: {info['n']}   labels: {info['labels']}   multi-mask: {info['multi_mask']}   "
              f"sizes (HxW): {sz['min_hw'][0]}x{sz['min_hw'][1]} .. {sz['max_hw'][0]}x{sz['max_hw'][1]}")
    out.print(f"near-duplicates (phash distance <= {d['threshold']}): {d['n_groups']} group(s), "
              f"{d['n_images']} image(s)")
    for g in d["groups"][:10]:
        out.print("  " + " = ".join(g), markup=False)


@main.command()
@click.argument("root", type=click.Path())
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Split JSON to write.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--val", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True)
@click.option("--test", type=click.FloatRange(0, 1, max_open=True), default=0.15, show_default=True)
@click.option("--kfold", "k", type=click.IntRange(2), default=None, help="Write K folds instead.")
@_layout
@_normal
@_skip
@_dup
@handle_errors
def split(root: str, out_path: str, seed: int, val: float, test: float, k: int | None, layout: str,
          include_normal: bool, skip_bad: bool, dup_threshold: int) -> None:
    """Write a stratified, duplicate-aware train/val/test split (or k folds) as JSON; with
    --skip-bad the skipped items are named and recorded in it (``dataset.skipped``)."""
    if k is not None:
        refuse_given(("val", "test"), f"--kfold {k} writes {k} folds, each one the test set once (no val/test "
                                      "fractions); drop --kfold for a train/val/test split")
    ds = open_dataset(root, layout, include_normal=include_normal, skip_bad=skip_bad, verify=True)
    if k:
        res = kfold(ds, k, seed, dup_threshold)
        parts = {f"fold {i}": f for i, f in enumerate(res.folds)}
    else:
        res = make_splits(ds, val, test, seed, dup_threshold)
        parts = {"train": res.train, "val": res.val, "test": res.test}
    res.save(out_path)
    labels = dict(zip(ds.ids, ds.labels))
    t = Table(title=f"{Path(out_path).name} (seed {seed})")
    for col in ("part", "images", *LABELS):
        t.add_column(col, justify="left" if col == "part" else "right")
    for name, ids in parts.items():
        per = [sum(labels[i] == lab for i in ids) for lab in LABELS]
        t.add_row(name, str(len(ids)), *map(str, per))
    out.print(t)
    d = res.duplicates
    out.print(f"{d['n_groups']} near-duplicate group(s) ({d['n_images']} images) kept on one side")


if __name__ == "__main__":
    main()
