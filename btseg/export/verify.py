"""Verify an exported artifact against the PyTorch FP32 model, on the real runtime path.

Both sides run through :mod:`btseg.runtime`: the reference through the ``torch`` backend
on the package, the artifact through its own backend (onnxruntime, openvino, tensorrt),
and both through the package's :class:`btseg.runtime.postprocess.PostProcess`, so the masks
compared are the masks a cart would show, at each image's own size; ground-truth Dice is
scored by :func:`btseg.runtime.score.score`, as training evaluation and the bench score.

Numbers (per artifact): max / mean absolute difference of probabilities; Dice of the
artifact's masks vs PyTorch's (pooled over all pixels of all images, which stays stable
when masks are tiny, plus the per-image mean); mean per-image Dice vs ground truth for
both, and their ratio.  Gates (:class:`Tolerances`, overridable as ``fp16=0.99``):

* fp32, fp16: Dice vs PyTorch >= ``fp32`` / ``fp16`` (0.999 / 0.995);
* int8: ground-truth Dice >= ``int8`` x PyTorch's (0.99: MLPerf's 99% of FP32 rule); when
  the images have no masks, or PyTorch's own GT Dice is below ``min_reference_dice`` (an
  untrained model), Dice vs PyTorch >= ``int8_agreement`` instead;
* any precision: max probability difference <= ``max_abs_diff`` (1.0: off by default, since
  the masks are what a cart shows; tighten it to catch drift before it flips pixels).

Every check runs; all failures are collected into one result (Optimum style) whose
:meth:`VerificationResult.error` is a single :class:`~btseg.errors.VerificationError`
naming the largest difference.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from btseg.errors import ConfigError, VerificationError
from btseg.metrics import dice, reduce
from btseg.specs import EXPORT_TARGETS

# OpenVINO runs an FP32/FP16 IR in bf16 on CPUs with bf16 units (AMX or avx512_bf16, as here) unless told otherwise, which moves
# masks (Dice vs PyTorch ~0.98 on the test student); verify the artifact itself in f32 and
# record the hint.  A cart that wants bf16 must be verified with that hint (btseg-bench).
BACKEND_OPTIONS: dict[str, dict[str, Any]] = {"openvino": {"precision_hint": "f32"}}


def gating_backend(target: str) -> str:
    """The backend a target's artifacts are gated on: the first of its spec's ``verified_by``."""
    return EXPORT_TARGETS[target].verified_by[0]


def also_runs_on(target: str) -> tuple[str, ...]:
    """Other backends that run a target's artifacts (its spec's ``verified_by`` after the
    first): verified too, recorded, not gating."""
    return EXPORT_TARGETS[target].verified_by[1:]


@dataclass
class Tolerances:
    """Verification gates; see the module docstring.  JSON-able via :meth:`to_dict`."""

    fp32: float = 0.999
    fp16: float = 0.995
    int8: float = 0.99
    int8_agreement: float = 0.95
    min_reference_dice: float = 0.05
    max_abs_diff: float = 1.0  # probability difference gate for every precision; 1.0 = off

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tolerances":
        return cls(**{k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__})

    def override(self, items: Sequence[str] | dict[str, float] | None) -> "Tolerances":
        """A copy with ``["fp16=0.99", ...]`` (or a dict) applied; ConfigError on bad items."""
        if not items:
            return self
        pairs = items.items() if isinstance(items, dict) else [_split(s) for s in items]
        d = self.to_dict()
        for k, v in pairs:
            if k not in d:
                raise ConfigError(f"--tolerance {k}={v}: unknown key; expected one of {', '.join(d)}")
            try:
                d[k] = float(v)
            except ValueError as e:
                raise ConfigError(f"--tolerance {k}={v}: not a number") from e
            if not 0.0 <= d[k] <= 1.0:
                raise ConfigError(f"--tolerance {k}={v}: expected a value in [0, 1]")
        return Tolerances.from_dict(d)


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(f"--tolerance {item!r}: expected KEY=VALUE, e.g. fp16=0.99")
    k, v = item.split("=", 1)
    return k.strip().lower(), v.strip()


@dataclass
class VerifySet:
    """The verification images, preprocessed, with PyTorch FP32's outputs on them."""

    inputs: list[np.ndarray]
    images: list[np.ndarray]
    gts: list[np.ndarray | None]
    ids: list[str]
    post: Any  # btseg.runtime.postprocess.PostProcess (imported lazily: export loads without it)
    ref_probs: list[np.ndarray] = field(default_factory=list)
    ref_masks: list[np.ndarray] = field(default_factory=list)
    ref_dice_gt: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerificationResult:
    """What :func:`verify_artifact` measured, and which gates failed."""

    status: str  # passed | failed | skipped
    n_images: int = 0
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    worst_image: str | None = None
    dice_vs_torch: float | None = None
    dice_vs_torch_mean: float | None = None
    dice_gt: float | None = None
    dice_gt_torch: float | None = None
    gt_ratio: float | None = None
    gate: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    backend: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        # 6 significant digits, not decimals: a 6e-8 difference must not print as 0
        return {k: (float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v) for k, v in d.items()}

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def error(self, artifact: str) -> VerificationError:
        return VerificationError(f"{artifact}: verification failed: {'; '.join(self.failures)} "
                                 f"(largest probability difference {self.max_abs_diff:.3g} on {self.worst_image})")


def _mean_gt_dice(masks: list[np.ndarray], vs: VerifySet) -> float | None:
    from btseg.runtime.score import Truth, score

    if not vs.gts or any(g is None for g in vs.gts):
        return None
    truths = [Truth(g, id=i) for g, i in zip(vs.gts, vs.ids)]
    return score(masks, truths, distances=False).mean("dice")


def _run(backend: Any, vs: VerifySet) -> tuple[list[np.ndarray], list[np.ndarray]]:
    probs, masks = [], []
    for x, im in zip(vs.inputs, vs.images):
        seg = vs.post(backend.infer(x)[0], im.shape[:2])
        probs.append(seg.prob)
        masks.append(seg.mask)
    return probs, masks


def build_verify_set(package_root: Path, images: Any, spec: Any, config: Any) -> VerifySet:
    """Preprocess an :class:`~btseg.export.quantize.ImageSet` and run PyTorch FP32 on it
    through the runtime's ``torch`` backend and the post-processing of ``config`` (the
    package's :class:`~btseg.package.ModelConfig`), once per export run."""
    from btseg.runtime.backend import load_backend
    from btseg.runtime.postprocess import PostProcess

    vs = VerifySet(images.inputs(spec), list(images.images), list(images.masks), list(images.ids),
                   PostProcess.of(config), data=images.describe())
    backend = load_backend("torch", package_root, device="cpu")
    vs.ref_probs, vs.ref_masks = _run(backend, vs)
    vs.ref_dice_gt = _mean_gt_dice(vs.ref_masks, vs)
    return vs


def verify_artifact(target: str, precision: str, artifact: Path, vs: VerifySet, tolerances: Tolerances,
                    device: str = "cpu", backend_name: str | None = None) -> VerificationResult:
    """Run ``artifact`` on ``vs`` through a runtime backend and gate it (module docstring).

    ``backend_name`` defaults to the target's gating backend; export also runs an artifact on
    the target's other ``verified_by`` backends (:func:`also_runs_on`: ONNX on OpenVINO),
    because the runtime and the bench can run it there.
    """
    from btseg.runtime.backend import load_backend

    name = backend_name or gating_backend(target)
    options = BACKEND_OPTIONS.get(name, {})
    backend = load_backend(name, artifact, device=device, **options)
    probs, masks = _run(backend, vs)
    diffs = [np.abs(p - q) for p, q in zip(probs, vs.ref_probs)]
    worst = int(np.argmax([d.max() for d in diffs]))
    info = {**backend.info(), **({"options": options} if options else {})}
    r = VerificationResult(status="passed", n_images=len(vs.inputs), backend=info, data=vs.data,
                           max_abs_diff=float(diffs[worst].max()),
                           mean_abs_diff=float(np.mean([d.mean() for d in diffs])), worst_image=vs.ids[worst])
    flat = lambda ms: np.concatenate([m.ravel() for m in ms])  # noqa: E731
    r.dice_vs_torch = dice(flat(masks), flat(vs.ref_masks))
    r.dice_vs_torch_mean = reduce(dice(m, q) for m, q in zip(masks, vs.ref_masks))["mean"]
    r.dice_gt, r.dice_gt_torch = _mean_gt_dice(masks, vs), vs.ref_dice_gt
    if r.dice_gt is not None and vs.ref_dice_gt:
        r.gt_ratio = r.dice_gt / vs.ref_dice_gt
    _gate(r, precision, tolerances)
    return r


def _gate(r: VerificationResult, precision: str, t: Tolerances) -> None:
    if precision == "int8" and r.gt_ratio is not None and (r.dice_gt_torch or 0) >= t.min_reference_dice:
        r.gate, r.thresholds = "gt_ratio", {"gt_ratio": t.int8}
        if r.gt_ratio < t.int8:
            r.failures.append(f"int8 keeps {r.gt_ratio:.2%} of PyTorch's ground-truth Dice "
                              f"({r.dice_gt:.4f} vs {r.dice_gt_torch:.4f}) < {t.int8:.2%}")
    else:
        need = {"fp32": t.fp32, "fp16": t.fp16, "int8": t.int8_agreement}[precision]
        r.gate, r.thresholds = "dice_vs_torch", {"dice_vs_torch": need}
        if r.dice_vs_torch < need:
            r.failures.append(f"{precision} Dice vs PyTorch masks {r.dice_vs_torch:.4f} < {need}")
    if r.max_abs_diff > t.max_abs_diff:
        r.thresholds["max_abs_diff"] = t.max_abs_diff
        r.failures.append(f"max probability difference {r.max_abs_diff:.3g} > {t.max_abs_diff}")
    if r.failures:
        r.status = "failed"
