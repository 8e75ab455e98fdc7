"""Calibrate the "no lesion" decision on the validation split, at training time.

For every validation image the model's probability map goes through the runtime's own
post-processing (:func:`btseg.runtime.postprocess.finish`, presence off) and its mask's
components are measured once (:func:`btseg.runtime.presence.components`).  Then, for each
candidate (``score`` statistic, ``min_area_frac``) of :data:`CANDIDATES`:

* the threshold is the *largest* one that still detects at least ``target`` of the
  validation lesion images (the k-th highest lesion score, k = ceil(target x n));
* its cost is the number of validation normal images it still flags.

The candidate that flags the fewest normal images wins (ties: the earlier, simpler one in
:data:`CANDIDATES`).  When no candidate can reach the target (more than 1 - target of the
lesion images have an empty mask), the decision is left ungated (``peak`` >= the pixel
threshold, i.e. present iff the mask is not empty) and ``reached`` says so.  Every
candidate's validation numbers are kept in ``calibration.candidates`` of the spec.

Example::

    >>> spec = calibrate_model(model, val_samples, cfg.spec, cfg.post)   # doctest: +SKIP
    >>> spec["threshold"], spec["calibration"]["val"]                   # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from btseg.errors import ConfigError
from btseg.runtime.presence import Components, components
from btseg.runtime.postprocess import PostProcess, finish

# (score, min_area_frac), simplest first: a peak threshold alone, then with a minimum area,
# then a mass or an area threshold alone
CANDIDATES: tuple[tuple[str, float], ...] = (
    ("peak", 0.0), ("peak", 0.001), ("peak", 0.002), ("peak", 0.005), ("peak", 0.01),
    ("mean", 0.0), ("mean", 0.002), ("mass", 0.0), ("area", 0.0))


class CalibrationWarning(UserWarning):
    """The validation split holds too few lesion images for the target (see :func:`min_lesions`)."""


def image_components(prob: np.ndarray, threshold: float, post: Mapping[str, Any]) -> Components:
    """The components the runtime would decide on, for one image-size probability map
    (``post``: the package's ``postprocess`` spec; its presence step is left out)."""
    ungated = {k: v for k, v in post.items() if k != "presence"}
    return components(prob, finish(prob, threshold, ungated).mask)


def threshold_for(lesion_scores: Sequence[float], target: float) -> float | None:
    """The largest threshold detecting >= ``target`` of ``lesion_scores`` (score >= t);
    None when that needs a threshold of 0 (too many lesion images have no component)."""
    if not 0 < target <= 1:
        raise ConfigError(f"presence target {target!r}: expected a number in (0, 1]")
    s = sorted((float(x) for x in lesion_scores), reverse=True)
    if not s:
        return None
    t = s[math.ceil(target * len(s) - 1e-9) - 1]
    return t if t > 0 else None


def evaluate_candidate(comps: Sequence[Components], has_lesion: Sequence[bool], score: str,
                       min_area: float, threshold: float) -> dict[str, int]:
    """Images detected / flagged by one (score, min_area, threshold) on measured components."""
    present = [c.image_score(score, min_area) >= threshold and c.image_score(score, min_area) > 0 for c in comps]
    return {"detected": sum(p for p, g in zip(present, has_lesion) if g), "n_lesion": sum(map(bool, has_lesion)),
            "flagged": sum(p for p, g in zip(present, has_lesion) if not g),
            "n_normal": sum(not g for g in has_lesion)}


def calibrate(comps: Sequence[Components], has_lesion: Sequence[bool], target: float = 0.95,
              pixel_threshold: float = 0.5,
              candidates: Sequence[tuple[str, float]] = CANDIDATES, split: str = "val") -> dict[str, Any] | None:
    """The presence spec (``postprocess.presence`` dict) for these validation images, or
    None when there is no lesion image to calibrate on."""
    if not any(has_lesion):
        return None
    table = []
    for score, min_area in candidates:
        t = threshold_for([c.image_score(score, min_area) for c, g in zip(comps, has_lesion) if g], target)
        if t is None:
            table.append({"score": score, "min_area_frac": min_area, "threshold": None, "reached": False})
            continue
        table.append({"score": score, "min_area_frac": min_area, "threshold": t, "reached": True,
                      **evaluate_candidate(comps, has_lesion, score, min_area, t)})
    ok = [r for r in table if r["reached"]]
    if ok:
        best = min(ok, key=lambda r: r["flagged"])  # min() keeps the first of equals: the simpler one
        chosen = {"score": best["score"], "min_area_frac": best["min_area_frac"], "threshold": best["threshold"]}
    else:
        chosen = {"score": "peak", "min_area_frac": 0.0, "threshold": float(pixel_threshold)}
    val = evaluate_candidate(comps, has_lesion, chosen["score"], chosen["min_area_frac"], chosen["threshold"])
    cal = {"split": split, "reached": bool(ok), "val": val, "rule": "largest threshold detecting "
           "the target share of val lesion images; fewest val normal images flagged", "candidates": table}
    if target < 1 and val["n_lesion"] < min_lesions(target):
        cal["warning"] = (f"{val['n_lesion']} {split} lesion image(s): a target of {target:g} needs at least "
                          f"{min_lesions(target)} before it may miss one, so the threshold is the lowest lesion "
                          "score; calibrate again on more scans (btseg-distill calibrate)")
        warnings.warn(f"presence calibration: {cal['warning']}", CalibrationWarning, stacklevel=2)
    return {**chosen, "target_sensitivity": target, "calibration": cal}


def calibrate_model(model: Any, samples: Sequence[Any], spec: Any, post: PostProcess, target: float = 0.95,
                    device: str = "cpu", batch_size: int = 16, split: str = "val") -> dict[str, Any] | None:
    """Run ``model`` (an ``nn.Module``) on the validation ``samples`` and :func:`calibrate`
    the presence decision that goes after ``post`` (the package's post-processing)."""
    from btseg.distill.evaluate import predict_probs

    comps, has = [], []
    for s, prob in predict_probs(model, samples, spec, batch_size, device):
        comps.append(image_components(prob, post.threshold, post.spec))
        has.append(bool(np.asarray(s.mask).any()))
    return calibrate(comps, has, target, post.threshold, split=split)


def min_lesions(target: float) -> int:
    """Lesion images a ``target`` needs before its threshold may miss even one of them
    (ceil(1 / (1 - target)): 20 for 0.95); with fewer, the threshold is the single lowest
    lesion score, and one odd image moves it anywhere."""
    if not 0 < target < 1:
        raise ConfigError(f"presence target {target!r}: expected a number in (0, 1) to recalibrate")
    return math.ceil(1 / (1 - target) - 1e-9)


def recalibrate_package(root: str | Path, samples: Sequence[Any], source: Mapping[str, Any], target: float = 0.95,
                        device: str = "cpu", write: bool = True) -> dict[str, Any]:
    """Calibrate the package's "no lesion" decision again, on ``samples`` (a site's own
    validation scans, or more of them than training held out), and write it into
    ``model.json`` (atomically, under :func:`btseg.package.package_lock`).

    The same rule as at training time (:func:`calibrate`); ``source`` (e.g. ``{"data":
    ..., "split": "val"}``) and the decision it replaces are recorded in
    ``calibration``.  Refused (DataError, nothing written) with fewer than
    :func:`min_lesions` lesion images, or when no candidate reaches ``target``.  The
    artifacts need no change: every backend reads the decision from ``model.json``.
    Returns ``{"previous": old spec or None, "presence": new spec, "written": bool}``.
    """
    from btseg.errors import DataError
    from btseg.package import load_package, package_lock

    load_package(root)  # a missing or broken package is named before anything is locked or created
    need = min_lesions(target)
    where = source.get("data", "samples")
    n_lesion = sum(bool(np.asarray(s.mask).any()) for s in samples)
    if n_lesion < need:
        raise DataError(f"{where}: {n_lesion} lesion image(s) to calibrate on; a target of {target:g} needs at "
                        f"least {need}, or its threshold is the single lowest lesion score")
    with package_lock(root):
        pkg = load_package(root)
        cfg = pkg.config
        post = PostProcess.of(cfg)
        old = (cfg.postprocess or {}).get("presence")
        spec = calibrate_model(pkg.build_model().to(device).eval(), samples, cfg.preprocess, post, target, device,
                               split=str(source.get("split", "given")))
        if spec is None or not spec["calibration"]["reached"]:
            raise DataError(f"{where}: the target {target:g} cannot be reached (too many of its {n_lesion} lesion "
                            f"images have no component at all); the decision in {root} is unchanged")
        previous = None if old is None else {k: old.get(k) for k in ("score", "min_area_frac", "threshold",
                                                                     "target_sensitivity")} | {
            "calibrated_on": {k: (old.get("calibration") or {}).get(k) for k in ("split", "data", "val")}}
        spec["calibration"].update({**{k: v for k, v in source.items() if k != "split"}, "previous": previous,
                                    "recalibrated": True})
        if write:
            pkg.config = replace(cfg, postprocess={**(cfg.postprocess or {}), "presence": spec})
            pkg.write_config()
    return {"previous": old, "presence": spec, "written": write}
