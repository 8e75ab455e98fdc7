"""A phantom lesion's shape on a grid: shared by the phantom (:mod:`btseg.data.phantom`) and
its lesion look-alikes (:mod:`btseg.data.phantom_normals`), so neither imports the other."""

from __future__ import annotations

import numpy as np


def lesion_field(g: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(normalised radius rho, boundary radius R(theta)) on an n x n grid; inside = rho < R."""
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    dx, dz = c[None, :] - g["cx"], c[:, None] - g["cz"]
    cr, sr = np.cos(g["rot"]), np.sin(g["rot"])
    u, v = (cr * dx + sr * dz) / g["a"], (-sr * dx + cr * dz) / g["b"]
    rho, th = np.hypot(u, v), np.arctan2(v, u)
    R = np.ones_like(rho)
    for k, amp, ph in g["harm"]:
        R += amp * np.cos(k * th + ph)
    for ang, amp, w in g["spic"]:
        d = np.angle(np.exp(1j * (th - ang)))      # wrapped angular distance
        R += amp * np.exp(-(d / w) ** 2)
    return rho, R
