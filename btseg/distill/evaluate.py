"""Evaluate a model (package or module) on samples: the numbers written into ``model.json``.

The network sees each image through THE preprocessing; its logits go through the
package's :class:`~btseg.runtime.postprocess.PostProcess` (resize back to the image's own
size, threshold, the package's clean-up) and are scored by :func:`btseg.runtime.score.score`,
the scoring that export verification and the bench use too, so the numbers are those of
the masks a cart shows.

Example::

    >>> from btseg.data import open_dataset                                  # doctest: +SKIP
    >>> s = evaluate_package("runs/demo/student", open_dataset("phantom"))
    >>> s["overall"]["dice"]["mean"], s["per_class"]["malignant"]["hd95"]["mean"]
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from btseg.data.sample import Sample
from btseg.preprocess import PreprocessSpec, preprocess_batch, resize_prob
from btseg.errors import ConfigError, DataError
from btseg.package import ModelPackage, load_package
from btseg.runtime.postprocess import PostProcess, sigmoid
from btseg.runtime.score import presence_counts, score


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def predict_logits(model: nn.Module, samples: Sequence[Sample], spec: PreprocessSpec, batch_size: int = 16,
                   device: str = "cpu") -> Iterator[tuple[Sample, np.ndarray]]:
    """Yield ``(sample, HxW float32 logits at the network's size)`` for every sample, in order."""
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(samples), batch_size):
            batch = [samples[i] for i in range(start, min(start + batch_size, len(samples)))]
            x = torch.from_numpy(preprocess_batch([s.image for s in batch], spec)).to(device)
            logits = model(x).float()[:, 0].cpu().numpy()
            yield from zip(batch, logits)
    finally:
        model.train(was_training)


def predict_probs(model: nn.Module, samples: Sequence[Sample], spec: PreprocessSpec, batch_size: int = 16,
                  device: str = "cpu") -> Iterator[tuple[Sample, np.ndarray]]:
    """Yield ``(sample, probability map at the image's size)`` for every sample, in order."""
    for s, lg in predict_logits(model, samples, spec, batch_size, device):
        yield s, resize_prob(sigmoid(lg), s.image.shape[:2])


def _resolve(model_or_pkg: Any, spec: PreprocessSpec | None, post: PostProcess | None,
             device: str) -> tuple[nn.Module, PreprocessSpec, PostProcess, dict[str, Any]]:
    if isinstance(model_or_pkg, (str, Path)):
        model_or_pkg = load_package(model_or_pkg)
    if isinstance(model_or_pkg, ModelPackage):
        cfg = model_or_pkg.config
        info = {"package": str(model_or_pkg.root), "architecture": cfg.architecture, "role": cfg.role}
        return model_or_pkg.build_model().to(device), spec or cfg.preprocess, post or PostProcess.of(cfg), info
    if isinstance(model_or_pkg, nn.Module):
        if spec is None:
            raise ConfigError("evaluate_package: a bare model needs its PreprocessSpec (spec=...)")
        return model_or_pkg, spec, post or PostProcess(), {}
    raise ConfigError(f"evaluate_package: expected a package directory, ModelPackage or nn.Module, "
                      f"got {type(model_or_pkg).__name__}")


def evaluate_package(model_or_pkg: Any, samples: Sequence[Sample], distances: bool = True, *,
                     spec: PreprocessSpec | None = None, threshold: float | None = None,
                     post: PostProcess | None = None, batch_size: int = 16, device: str = "cpu",
                     per_image: bool = False) -> dict[str, Any]:
    """Dice, IoU, precision, recall, specificity (+ HD95, ASSD with ``distances``), overall
    and per class, as :meth:`btseg.metrics.MetricAccumulator.summary` returns them, plus
    ``n``, ``threshold``, ``seconds`` and the package's identity.

    Args:
        model_or_pkg: a package directory, a :class:`ModelPackage`, or an ``nn.Module``
            (then ``spec`` is required).
        samples: the images to score (e.g. ``splits.select(dataset, "test")``).
        distances: also compute HD95/ASSD (slower).
        spec, threshold: override the package's preprocessing / threshold.
        post: the post-processing (default: the package's, :meth:`PostProcess.of`; for a
            bare model, :data:`btseg.contract.DEFAULT_THRESHOLD` and no clean-up); ``threshold`` overrides its threshold.
        per_image: also return ``"per_image"``, one row per sample (``id``, ``label``,
            every metric, ``present``/``presence``), in sample order: what paired statistics
            across models need.

    ``"presence"`` holds the image-level "no lesion" decision's counts (lesion images
    detected, normal images flagged: :func:`btseg.runtime.score.presence_counts`) and the
    presence spec that made them (None: the package is not gated).
    """
    if len(samples) == 0:
        raise DataError("evaluate: no samples to evaluate")
    model, spec, post, info = _resolve(model_or_pkg, spec, post, device)
    if threshold is not None:
        post = dataclasses.replace(post, threshold=float(threshold))
    t0 = time.perf_counter()
    pairs = list(predict_logits(model, samples, spec, batch_size, device))
    acc = score((post(lg, s.image.shape[:2]) for s, lg in pairs), [s for s, _ in pairs], distances)
    short_spec = {k: v for k, v in (post.spec.get("presence") or {}).items() if k != "calibration"}
    out = {**info, **acc.summary(), "n": len(samples), "threshold": post.threshold,
           "presence": {**presence_counts(acc), "spec": short_spec or None},
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
