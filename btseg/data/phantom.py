"""Synthetic B-mode breast ultrasound, written in the real dataset layouts.

Physics, kept cheap (one FFT-sized pass per image, no per-pixel Python):

1. A tissue model on a linear-probe field of view: skin, subcutaneous fat with Cooper's
   ligaments, heterogeneous glandular tissue, striated pectoral muscle.  Each tissue has a
   backscatter amplitude and an attenuation per pixel of depth.
2. Random scatterers (Gaussian, i.e. many sub-resolution scatterers per cell, plus a few
   bright point reflectors) weighted by the backscatter map and by two-way attenuation
   (cumulative along depth), so a strongly attenuating lesion casts a posterior shadow and
   a weakly attenuating one gives posterior enhancement: physically, not painted on.
3. RF = scatterers convolved with a Gaussian-modulated PSF (axial cosine carrier); envelope
   by the Hilbert transform along depth; time-gain compensation of the *average* tissue
   attenuation; log compression to a random 45-60 dB dynamic range.

Lesions: benign = oval, wider than tall, smooth circumscribed margin, homogeneous and
hypoechoic, low attenuation (posterior enhancement).  Malignant = irregular, spiculated,
taller than wide, heterogeneous, echogenic halo, bright foci, high attenuation (shadow).

Every image is seeded from ``(seed, index)``, so output is identical for any ``workers``.

Example::

    >>> summary = synthesize("phantom", n=60, size=128, seed=0)   # doctest: +SKIP
    >>> open_dataset("phantom").describe()["counts"]               # doctest: +SKIP
"""

from __future__ import annotations

import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from scipy.signal import hilbert

from btseg.data.phantom_field import lesion_field as _lesion_field
from btseg.errors import ConfigError, DataError
from btseg.io import read_json, write_json, write_png
from btseg.provenance import code_hash

BUSI_FRACTIONS = (437 / 780, 210 / 780, 133 / 780)  # benign, malignant, normal
MAX_INTERNAL = 256  # simulate at most this many pixels a side, then resize
MULTI_LESION_P = 0.08


def _smooth(rng: np.random.Generator, n: int, cells: int = 6) -> np.ndarray:
    """Smooth random field in [0, 1] (n x n): coarse noise upsampled bicubically."""
    f = cv2.resize(rng.random((cells, cells), dtype=np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    return np.clip(f, 0.0, 1.0)


def _curve(rng: np.random.Generator, x: np.ndarray, mean: float, amp: float) -> np.ndarray:
    """A smooth, gently wavy layer boundary depth z(x) (normalised units)."""
    k = rng.uniform(0.5, 2.5, 3)
    ph = rng.uniform(0, 2 * np.pi, 3)
    return mean + amp * (np.sin(2 * np.pi * k[:, None] * x[None] + ph[:, None]).sum(0) / 3)


def _lesion_geometry(rng: np.random.Generator, malignant: bool, top: float) -> dict:
    """Random lesion parameters in normalised image coordinates."""
    if malignant:
        a = rng.uniform(0.07, 0.13)               # lateral semi-axis
        b = a * rng.uniform(1.15, 1.6)            # taller than wide
        harm = [(k, rng.uniform(0.04, 0.12), rng.uniform(0, 2 * np.pi)) for k in rng.integers(3, 11, 4)]
        spic = [(rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.7), rng.uniform(0.04, 0.1))
                for _ in range(rng.integers(5, 13))]
        rot = rng.uniform(-0.25, 0.25)
    else:
        a = rng.uniform(0.09, 0.18)
        b = a * rng.uniform(0.45, 0.75)           # wider than tall
        harm = [(k, rng.uniform(0.01, 0.05), rng.uniform(0, 2 * np.pi)) for k in rng.integers(2, 4, 2)]
        spic = []
        rot = rng.uniform(-0.3, 0.3)
    cz = rng.uniform(min(top + b + 0.03, 0.6), 0.62)
    cx = rng.uniform(a + 0.08, 1 - a - 0.08)
    return dict(cx=cx, cz=cz, a=a, b=b, harm=harm, spic=spic, rot=rot)


def render(rng: np.random.Generator, label: str, size: int,
           n_lesions: int = 1, hard_normals: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """One synthetic image (size x size uint8) and one bool mask per lesion.

    ``hard_normals`` adds lesion look-alikes (:mod:`btseg.data.phantom_normals`): two to
    four on a normal image, up to two on a lesion image, never in a mask.
    """
    n = min(size, MAX_INTERNAL)
    x = (np.arange(n, dtype=np.float32) + 0.5) / n
    z = x[:, None]
    skin = _curve(rng, x, rng.uniform(0.025, 0.045), 0.006)
    fat = _curve(rng, x, rng.uniform(0.14, 0.26), 0.04)
    muscle = _curve(rng, x, rng.uniform(0.7, 0.84), 0.04)
    # backscatter amplitude and attenuation (nepers per image height) per tissue
    lig = np.exp(-((_smooth(rng, n, 5) - 0.5) / 0.025) ** 2)          # Cooper's ligaments
    gland = 0.55 + 0.9 * _smooth(rng, n, 9)
    fibres = 1 + 0.4 * np.cos(2 * np.pi * (z * rng.uniform(18, 30) + 0.05 * x[None] * rng.normal()))
    amp = np.where(z < skin, 2.2, np.where(z < fat, 0.3 + 1.2 * lig, np.where(z < muscle, gland, 0.45 * fibres)))
    att = np.where(z < fat, 1.5, np.where(z < muscle, 3.0, 4.0)).astype(np.float32)
    att0 = att  # the average tissue the TGC compensates; lesions deviate from it
    masks = []
    edge_db = 0.0
    if hard_normals:
        from btseg.data import phantom_normals

        hr = rng.spawn(1)[0]  # a child stream: the plain phantom's draws below stay the same
        normal = label == "normal"
        count = int(hr.integers(2, 5)) if normal else int(hr.integers(0, 3))
        amp, att, _ = phantom_normals.add_lookalikes(hr, amp, att, fat, muscle, count)
        if hr.random() < (0.5 if normal else 0.25):
            edge_db = phantom_normals.edge_darkening(hr, n)
    if label != "normal":
        mal = label == "malignant"
        for _ in range(n_lesions):
            g = _lesion_geometry(rng, mal, float(fat.mean()))
            if masks:  # later lesions are smaller
                g["a"] *= 0.6; g["b"] *= 0.6
            rho, R = _lesion_field(g, n)
            edge = 0.12 if mal else 0.03              # indistinct vs circumscribed margin
            inside = 1 / (1 + np.exp(np.clip((rho - R) / edge, -50, 50)))
            if mal:
                core = rng.uniform(0.06, 0.2) * (0.3 + 1.4 * _smooth(rng, n, 7))
                foci = (rng.random((n, n)) < 0.004) * rng.uniform(4, 8)  # microcalcifications
                halo = np.exp(-((rho - R - 0.35) / 0.2) ** 2) * (rho > R) * rng.uniform(0.8, 1.4)
                amp = amp * (1 + halo)
                amp = amp * (1 - inside) + (core + foci) * inside
                att = att * (1 + inside * rng.uniform(1.0, 2.2))
            else:
                core = rng.uniform(0.03, 0.2)
                amp = amp * (1 - inside) + core * inside
                att = att * (1 - inside * rng.uniform(0.8, 0.95))
            rho_o, R_o = (rho, R) if n == size else _lesion_field(g, size)
            masks.append(rho_o < R_o)
    # two-way attenuation along depth, then TGC for the average tissue only
    T = np.exp(-2 * np.cumsum(att, axis=0) / n)
    tgc = np.exp(2 * np.cumsum(att0, axis=0) / n)
    scat = rng.standard_normal((n, n), dtype=np.float32) + (rng.random((n, n)) < 0.002) * rng.normal(0, 6, (n, n))
    scat = (scat * amp * T).astype(np.float32)
    rf = cv2.filter2D(scat, -1, _psf(rng), borderType=cv2.BORDER_REFLECT)
    # TGC amplifies the received RF before detection, as a scanner does; after the Hilbert
    # transform it would also amplify the transform's leakage from the bright skin line
    env = np.abs(hilbert(rf * (tgc * (1 + 0.3 * z)), axis=0))
    db = 20 * np.log10(env / np.percentile(env, 99.5) + 1e-6) - rng.uniform(4, 10) - edge_db  # overall gain
    dr = rng.uniform(45, 60)
    img = np.clip((db + dr) / dr, 0, 1) ** rng.uniform(1.3, 1.7) * 255  # display gamma: mid-grey tissue
    if n != size:
        img = cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.clip(img, 0, 255).astype(np.uint8), masks


def _psf(rng: np.random.Generator) -> np.ndarray:
    """Gaussian-modulated PSF: cosine carrier along depth (rows), Gaussian beam laterally."""
    sz, sx, f0 = rng.uniform(0.9, 1.3), rng.uniform(1.4, 2.2), rng.uniform(0.2, 0.28)
    zz, xx = np.mgrid[-5:6, -7:8].astype(np.float32)
    return (np.exp(-zz**2 / (2 * sz**2) - xx**2 / (2 * sx**2)) * np.cos(2 * np.pi * f0 * zz)).astype(np.float32)


def sample(seed: int, index: int, label: str, size: int,
           hard_normals: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """The image and lesion masks of item ``index`` of a phantom seeded ``seed``
    (``hard_normals``: with lesion look-alikes, see :func:`render`)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    k = 2 if label != "normal" and rng.random() < MULTI_LESION_P else 1
    return render(rng, label, size, k, hard_normals)


def _busi_job(args: tuple) -> tuple[str, int, list[dict]]:
    out, seed, index, label, k, size, hard, defects = args
    img, masks = sample(seed, index, label, size, hard)
    stem = f"{label} ({k})"
    if defects:
        from btseg.data import phantom_defects

        rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0xDEF]))
        recs = phantom_defects.write_item(out / label, stem, img, masks or [np.zeros((size, size), bool)],
                                          defects, rng)
        return label, len(masks), [{"item": f"{label}/{stem}.png", **r} for r in recs]
    write_png(out / label / f"{stem}.png", img)
    for j, m in enumerate(masks or [np.zeros((size, size), bool)]):
        write_png(out / label / (f"{stem}_mask.png" if j == 0 else f"{stem}_mask_{j}.png"), m.astype(np.uint8) * 255)
    return label, len(masks), []


def _init_worker(lobule_echo: tuple[float, float]) -> None:
    from btseg.data import phantom_normals

    cv2.setNumThreads(1)  # processes already fill the cores
    phantom_normals.LOBULE_ECHO = lobule_echo  # a spawned worker draws what the parent records


def class_counts(n: int, fractions: tuple[float, float, float]) -> dict[str, int]:
    """Images per class for ``n`` images split by ``fractions`` (benign, malignant, normal)."""
    if n < 1 or len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ConfigError(f"n={n}, fractions={fractions}: expected n >= 1 and three non-negative fractions")
    s = sum(fractions)
    nb, nm = round(n * fractions[0] / s), round(n * fractions[1] / s)
    nm = min(nm, n - nb)
    return {"benign": nb, "malignant": nm, "normal": n - nb - nm}


# the code that draws a phantom image: a set made by other code is another data set
GENERATOR_FILES = ["btseg/data/phantom.py", "btseg/data/phantom_field.py", "btseg/data/phantom_normals.py",
                   "btseg/data/phantom_defects.py"]


def generator_id() -> str:
    """A hash of the phantom's drawing code (comments and docstrings excluded) and the lobule
    brightness, recorded in ``phantom.json`` as ``generator``: :func:`ensure` compares it, so
    a changed phantom is never scored as the old one's images."""
    from btseg.data import phantom_normals

    return code_hash(GENERATOR_FILES)[:16] + "-lobule-%g-%g" % phantom_normals.LOBULE_ECHO


def ensure(out_dir: str | Path, n: int, size: int, seed: int, *, hard_normals: bool = False,
           fractions: tuple[float, float, float] = BUSI_FRACTIONS, workers: int | None = None,
           other: str = "redraw") -> dict | None:
    """The phantom set ``out_dir`` as these arguments and today's generator draw it: reused
    when its ``phantom.json`` says it was made so (returns None), drawn otherwise (returns
    :func:`synthesize`'s summary).  The one reuse rule of the demo and the studies.

    A set made otherwise (other arguments, or another generator: :func:`generator_id`) is
    removed and drawn again with ``other="redraw"``; with ``other="refuse"`` (a study whose
    work directory holds runs trained on it) it is a :class:`ConfigError` naming what differs.
    """
    if other not in ("redraw", "refuse"):
        raise ConfigError(f"other={other!r}: expected 'redraw' or 'refuse'")
    out = Path(out_dir)
    want = {"n": n, "size": size, "seed": seed, "hard_normals": bool(hard_normals),
            "fractions": [float(f) for f in fractions], "generator": generator_id()}
    if (out / "phantom.json").is_file():
        made = read_json(out / "phantom.json")
        got = {k: made.get(k) for k in want}
        got["hard_normals"] = bool(got["hard_normals"])
        if got == want:
            return None
        diff = "; ".join(f"{k} {got[k]} (now {want[k]})" for k in want if got[k] != want[k])
        if other == "refuse":
            raise ConfigError(f"{out}: a phantom set made otherwise ({diff}); the runs beside it were trained on "
                              "it: use a new work directory")
        shutil.rmtree(out)
    return synthesize(out, n=n, size=size, seed=seed, fractions=fractions, workers=workers, hard_normals=hard_normals)


def synthesize(out_dir: str | Path, n: int = 300, size: int = 256, seed: int = 0,
               fractions: tuple[float, float, float] = BUSI_FRACTIONS, workers: int | None = None,
               progress: Callable[[int], None] | None = None, hard_normals: bool = False,
               defects: str | tuple[str, ...] = ()) -> dict:
    """Write ``n`` phantom images in the BUSI layout under ``out_dir``; return a summary.

    Args:
        out_dir: becomes the ``Dataset_BUSI_with_GT`` equivalent (``benign/``, ``malignant/``,
            ``normal/``), plus ``phantom.json`` with this summary.
        n, size, seed: image count, side in pixels, seed.
        fractions: benign, malignant, normal proportions (default BUSI's 437/210/133).
        workers: processes (default: CPU count); the output does not depend on it.
        progress: called with the number of images finished since the last call.
        hard_normals: add lesion look-alikes (fat lobules, ducts, ligament and rib shadows,
            edge-of-field darkening; :mod:`btseg.data.phantom_normals`), so that normal images
            are as hard as real ones.  Off by default: the plain phantom is unchanged.
        defects: real-set defects to write, one item each (:mod:`btseg.data.phantom_defects`:
            ``"all"``, ``"bad"``, ``"good"`` or names); ``phantom.json`` lists which file got
            which and whether it makes its item unusable.
    """
    from btseg.data import phantom_defects

    if size < 32:
        raise ConfigError(f"size={size}: expected >= 32")
    out = Path(out_dir)
    counts = class_counts(n, fractions)
    defects = phantom_defects.parse(defects)
    per_item = phantom_defects.assign(defects, [lab for lab, c in counts.items() for _ in range(c)], seed)
    jobs, i = [], 0
    for label, c in counts.items():
        try:
            (out / label).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DataError(f"{out / label}: cannot create ({e.strerror or e})") from e
        for k in range(1, c + 1):
            jobs.append((out, seed, i, label, k, size, hard_normals, per_item.get(i, []))); i += 1
    t0 = time.perf_counter()
    workers = workers or __import__("os").cpu_count() or 1
    results = []
    if workers == 1:
        for j in jobs:
            results.append(_busi_job(j))
            progress and progress(1)
    else:
        # spawn, not fork: a caller that already runs threads (OpenMP, ORT, OpenVINO, a test
        # runner) can hold a lock at fork time and the forked child then waits forever
        from btseg.data import phantom_normals

        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(phantom_normals.LOBULE_ECHO,),
                                 mp_context=multiprocessing.get_context("spawn")) as ex:
            for r in ex.map(_busi_job, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                results.append(r)
                progress and progress(1)
    summary = {"layout": "busi", "out": str(out), "n": n, "size": size, "seed": seed, "fractions": list(fractions),
               "hard_normals": hard_normals, "generator": generator_id(), "counts": counts,
               "multi_mask": sum(1 for _, k, _ in results if k > 1), "seconds": round(time.perf_counter() - t0, 3)}
    if defects:
        summary["defects"] = [d for _, _, recs in results for d in recs]
    write_json(out / "phantom.json", summary)
    return summary


def _lesion_items(n: int, seed: int, size: int):
    """(index, label, image, merged mask) for n lesion images, ~2:1 benign:malignant like UDIAT."""
    counts = class_counts(n, (110, 53, 0))
    labels = ["benign"] * counts["benign"] + ["malignant"] * counts["malignant"]
    order = np.random.default_rng(seed).permutation(n)  # interleave classes as real ids do
    for i in range(n):
        label = labels[order[i]]
        img, masks = sample(seed, i, label, size)
        yield i + 1, label, img, np.logical_or.reduce(masks)


def write_datasetb(out: str | Path, n: int = 20, seed: int = 0, size: int = 128) -> dict[str, int]:
    """Write a Dataset B (UDIAT) layout: ``original/``, ``GT/``, ``DatasetB.xlsx``; return counts."""
    import openpyxl

    out = Path(out)
    (out / "original").mkdir(parents=True, exist_ok=True)
    (out / "GT").mkdir(exist_ok=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image", "Type"])
    counts = {"benign": 0, "malignant": 0}
    for i, label, img, mask in _lesion_items(n, seed, size):
        write_png(out / "original" / f"{i:06d}.png", img)
        write_png(out / "GT" / f"{i:06d}.png", mask.astype(np.uint8) * 255)
        ws.append([i if i % 2 else f"{i:06d}", label.capitalize()])  # both cell types real files use
        counts[label] += 1
    wb.save(out / "DatasetB.xlsx")
    return counts


def write_folder(out: str | Path, n: int = 20, seed: int = 0, size: int = 128, labels: bool = True,
                 mask_suffix: str = "_mask") -> dict[str, int]:
    """Write the plain folder layout: ``images/``, ``masks/<stem><mask_suffix>.png``, ``labels.csv``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    rows, counts = ["image,label"], {"benign": 0, "malignant": 0}
    for i, label, img, mask in _lesion_items(n, seed, size):
        write_png(out / "images" / f"case_{i:03d}.png", img)
        write_png(out / "masks" / f"case_{i:03d}{mask_suffix}.png", mask.astype(np.uint8) * 255)
        rows.append(f"case_{i:03d}.png,{label}")
        counts[label] += 1
    if labels:
        (out / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return counts
