"""Evaluate a model (package or module) on samples with btseg.metrics.

The network sees each image through THE preprocessing; its probability map is resized
back to the image's own size and thresholded there, as the runtime does, so the numbers
are those of the original-resolution masks.

Example::

    >>> from btseg.data import open_dataset                                  # doctest: +SKIP
    >>> s = evaluate_package("runs/demo/student", open_dataset("phantom"))
    >>> s["overall"]["dice"]["mean"], s["per_class"]["malignant"]["hd95"]["mean"]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from btseg.data.sample import Sample
from btseg.preprocess import PreprocessSpec, preprocess_batch, resize_prob
from btseg.errors import ConfigError, DataError
from btseg.metrics import MetricAccumulator
from btseg.package import ModelPackage, load_package


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def predict_probs(model: nn.Module, samples: Sequence[Sample], spec: PreprocessSpec, batch_size: int = 16,
                  device: str = "cpu") -> Iterator[tuple[Sample, np.ndarray]]:
    """Yield ``(sample, probability map at the image's size)`` for every sample, in order."""
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
            x = torch.from_numpy(preprocess_batch([s.image for s in batch], spec)).to(device)
            probs = torch.sigmoid(model(x).float())[:, 0].cpu().numpy()
            for s, p in zip(batch, probs):
                yield s, resize_prob(p, s.image.shape[:2])
    finally:
        model.train(was_training)


def _resolve(model_or_pkg: Any, spec: PreprocessSpec | None, threshold: float | None,
             device: str) -> tuple[nn.Module, PreprocessSpec, float, dict[str, Any]]:
    if isinstance(model_or_pkg, (str, Path)):
        model_or_pkg = load_package(model_or_pkg)
    if isinstance(model_or_pkg, ModelPackage):
        cfg = model_or_pkg.config
        info = {"package": str(model_or_pkg.root), "architecture": cfg.architecture, "role": cfg.role}
        return (model_or_pkg.build_model().to(device), spec or cfg.preprocess,
                cfg.threshold if threshold is None else threshold, info)
    if isinstance(model_or_pkg, nn.Module):
        if spec is None:
            raise ConfigError("evaluate_package: a bare model needs its PreprocessSpec (spec=...)")
        return model_or_pkg, spec, 0.5 if threshold is None else threshold, {}
    raise ConfigError(f"evaluate_package: expected a package directory, ModelPackage or nn.Module, "
                      f"got {type(model_or_pkg).__name__}")


def evaluate_package(model_or_pkg: Any, samples: Sequence[Sample], distances: bool = True, *,
                     spec: PreprocessSpec | None = None, threshold: float | None = None,
                     batch_size: int = 16, device: str = "cpu", per_image: bool = False) -> dict[str, Any]:
    """Dice, IoU, precision, recall, specificity (+ HD95, ASSD with ``distances``), overall
    and per class, as :meth:`btseg.metrics.MetricAccumulator.summary` returns them, plus
    ``n``, ``threshold``, ``seconds`` and the package's identity.

    Args:
        model_or_pkg: a package directory, a :class:`ModelPackage`, or an ``nn.Module``
            (then ``spec`` is required).
        samples: the images to score (e.g. ``splits.select(dataset, "test")``).
        distances: also compute HD95/ASSD (slower).
        spec, threshold: override the package's preprocessing / threshold.
        per_image: also return ``"per_image"``, one row per sample (``id``, ``label`` and
            every metric), in sample order: what paired statistics across models need.
    """
    if len(samples) == 0:
        raise DataError("evaluate: no samples to evaluate")
    model, spec, thr, info = _resolve(model_or_pkg, spec, threshold, device)
    t0 = time.perf_counter()
    acc = MetricAccumulator(distances=distances)
    for s, prob in predict_probs(model, samples, spec, batch_size, device):
        acc.add(prob >= thr, s.mask, label=s.label, spacing=s.spacing_mm, sample_id=s.id)
    out = {**info, **acc.summary(), "n": len(samples), "threshold": thr,
           "seconds": round(time.perf_counter() - t0, 3)}
    if per_image:
        out["per_image"] = [dict(r) for r in acc.rows]
    return out


def short(summary: dict[str, Any], metrics: Sequence[str] = ("dice", "iou", "hd95")) -> dict[str, Any]:
    """Means only, ``{"overall": {m: mean}, "<label>": {m: mean}}``: what logs print."""
    def means(block: dict) -> dict[str, float]:
        return {m: round(block[m]["mean"], 4) for m in metrics if m in block}

    return {"overall": means(summary["overall"]),
            **{lab: means(b) for lab, b in summary.get("per_class", {}).items()}}
