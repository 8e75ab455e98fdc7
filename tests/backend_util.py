"""One check that an exported package runs the same on every installed backend as in torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from btseg.metrics import dice
from btseg.runtime import Segmenter


def assert_backends_match_torch(pkg: Path, backends: tuple[str, ...] = ("onnxruntime", "openvino"), **load):
    """Segment one odd-sized frame with torch and with each backend's artifact (``load``:
    more :meth:`Segmenter.load` arguments, e.g. ``precision="fp32"``): probabilities within
    1e-3 and masks the same (Dice > 0.99, or both empty).  Returns torch's result."""
    frame = np.random.default_rng(0).integers(0, 255, (70, 90), dtype=np.uint8)
    ref = Segmenter.load(pkg, backend="torch").segment(frame)
    for backend in backends:
        out = Segmenter.load(pkg, backend=backend, **load).segment(frame)
        assert np.abs(out.prob - ref.prob).max() < 1e-3, backend
        assert dice(out.mask, ref.mask) > 0.99 or (not out.mask.any() and not ref.mask.any()), backend
    return ref
