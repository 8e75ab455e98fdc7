"""Lesion look-alikes for the phantom: what makes real normal scans hard.

A student trained on the plain phantom never draws a lesion on a normal image, because
nothing in a plain phantom normal looks like one.  Real normal breast scans do: fat
lobules (oval, hypoechoic, wider than tall, like a fibroadenoma), hypoechoic ducts
(tubular, near-anechoic), refraction shadows under Cooper's ligaments and the acoustic
shadow of a rib (dark vertical bands, like a malignant lesion's posterior shadow), and
darkening at the edge of the field where the probe lost contact.  With
``hard_normals=True`` (:func:`btseg.data.phantom.sample`, ``btseg-data synth
--hard-normals``) every normal image gets two to four of these and every lesion image
up to two (real lesion scans contain them too, never inside the mask).

They are made like the lesions: as backscatter and attenuation maps that the same
scatter / PSF / envelope / log-compression chain turns into an image, so a shadow comes
from attenuation, not from paint.  Their random draws come from a child generator
(``rng.spawn``), so the rest of the image is the one the plain phantom draws for that
seed and index, and the plain phantom stays byte-identical.
"""

from __future__ import annotations

import numpy as np

from btseg.data.phantom_field import lesion_field

KINDS = ("fat_lobule", "duct", "ligament_shadow", "rib")
# backscatter inside a fat lobule: that of the subcutaneous fat layer it is made of (0.3 plus
# its ligaments), so a lobule is isoechoic to fat and hypoechoic to the gland it bulges into,
# as a real one is.  Until 2026-12 it was 0.08-0.3, darker than fat and as dark as a benign
# lesion's core (0.03-0.2): no real fat lobule looks like that, and with it no model told a
# lobule from a fibroadenoma (benchmarks/results/heldout-normals*.md).  The darker lobules
# stay available as a stress test: benchmarks/lobule_echo.py --echo 0.08,0.3.
LOBULE_ECHO: tuple[float, float] = (0.3, 0.5)


def _oval(rng: np.random.Generator, cx: float, cz: float, a: float, b: float, rough: float) -> dict:
    harm = [(int(k), rng.uniform(0.0, rough), rng.uniform(0, 2 * np.pi)) for k in rng.integers(2, 5, 2)]
    return dict(cx=cx, cz=cz, a=a, b=b, harm=harm, spic=[], rot=rng.uniform(-0.25, 0.25))


def _inside(g: dict, n: int, edge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rho, R = lesion_field(g, n)
    return 1 / (1 + np.exp(np.clip((rho - R) / edge, -50, 50))), rho, R


def add_lookalikes(rng: np.random.Generator, amp: np.ndarray, att: np.ndarray, fat: np.ndarray,
                   muscle: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Add ``count`` look-alikes to the backscatter ``amp`` and attenuation ``att`` maps.

    ``fat`` and ``muscle`` are the layer-boundary depths per column (normalised).  Returns the
    new maps and the kinds added, in order.
    """
    n = amp.shape[0]
    x = (np.arange(n, dtype=np.float32) + 0.5) / n
    z = x[:, None]
    top, bottom = float(fat.mean()), float(muscle.mean())
    kinds = []
    for _ in range(count):
        kind = str(rng.choice(KINDS, p=(0.4, 0.25, 0.2, 0.15)))
        kinds.append(kind)
        if kind == "fat_lobule":  # oval, hypoechoic, circumscribed, thin echogenic capsule
            a = rng.uniform(0.06, 0.15)
            g = _oval(rng, rng.uniform(a + 0.05, 1 - a - 0.05), rng.uniform(top - 0.04, min(top + 0.22, 0.62)),
                      a, a * rng.uniform(0.4, 0.7), 0.04)
            inside, rho, R = _inside(g, n, 0.04)
            capsule = np.exp(-((rho - R) / 0.06) ** 2) * rng.uniform(0.3, 0.9)
            amp = amp * (1 + capsule) * (1 - inside) + rng.uniform(*LOBULE_ECHO) * inside
            att = att * (1 - inside) + 1.5 * inside  # fat: the attenuation of the fat layer
        elif kind == "duct":  # long, thin, near-anechoic fluid: posterior enhancement
            a = rng.uniform(0.12, 0.3)
            g = _oval(rng, rng.uniform(0.2, 0.8), rng.uniform(top + 0.06, min(top + 0.3, 0.65)),
                      a, rng.uniform(0.018, 0.04), 0.06)
            g["rot"] = rng.uniform(-0.35, 0.35)
            inside, _, _ = _inside(g, n, 0.05)
            amp = amp * (1 - inside) + rng.uniform(0.02, 0.1) * inside
            att = att * (1 - inside * rng.uniform(0.7, 0.9))
        elif kind == "ligament_shadow":  # refraction at a ligament: a dark band down to the bottom
            cx, w = rng.uniform(0.1, 0.9), rng.uniform(0.012, 0.035)
            start = top + rng.uniform(-0.03, 0.08)
            band = np.exp(-((x[None] - cx - 0.05 * rng.normal() * (z - start)) / w) ** 2) * (z > start)
            amp = amp * (1 + 1.5 * np.exp(-((z - start) / 0.01) ** 2) * band)  # the bright ligament
            att = att * (1 + band * rng.uniform(2.0, 5.0))
        else:  # rib: hypoechoic oval with a bright anterior cortex, total shadow behind it
            a = rng.uniform(0.08, 0.16)
            g = _oval(rng, rng.uniform(a, 1 - a), rng.uniform(max(bottom, 0.72), 0.9), a, a * rng.uniform(0.4, 0.6), 0.02)
            inside, rho, R = _inside(g, n, 0.03)
            front = np.exp(-((rho - R) / 0.08) ** 2) * (z < g["cz"]) * 3.0
            amp = amp * (1 + front) * (1 - inside) + 0.1 * inside
            att = att * (1 + inside * rng.uniform(8.0, 15.0))
    return amp, att.astype(np.float32), kinds


def edge_darkening(rng: np.random.Generator, n: int) -> np.ndarray:
    """dB to subtract per column (1 x n): lost probe contact on one or both lateral edges."""
    x = (np.arange(n, dtype=np.float32) + 0.5) / n
    loss = np.zeros(n, np.float32)
    for side in rng.permutation(2)[: rng.integers(1, 3)]:
        d = x if side == 0 else 1 - x
        width = rng.uniform(0.06, 0.2)
        loss += rng.uniform(15, 35) * np.clip(1 - d / width, 0, 1) ** 1.5
    return loss[None, :]
