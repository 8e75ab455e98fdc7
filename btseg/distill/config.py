"""Training configuration: one typed dataclass, saved as JSON, with named presets.

A preset is a :class:`TrainConfig` instance, never a branch in the training code.  The
CLI starts from a preset and overrides a few fields (``--epochs``, ``--kd``...) with
:meth:`TrainConfig.replace`, which re-validates.

Example::

    >>> cfg = get_preset("tiny").replace(kd="response", epochs=1)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from btseg.contract import DEFAULT_THRESHOLD, check_postprocess, check_threshold, default_postprocess
from btseg.preprocess import PreprocessSpec
from btseg.errors import ConfigError
from btseg.runtime.postprocess import PostProcess

KD_MODES = ("none", "response", "feature", "dual")
TEACHER_MODES = ("routed", "benign", "malignant", "mean")
DEVICES = ("auto", "cpu", "cuda")
# (field, low, low exclusive, high) of every float hyper-parameter
FLOAT_RANGES = (("lr", 0.0, True, 10.0), ("weight_decay", 0.0, False, 10.0), ("warmup_epochs", 0.0, False, 1e4),
                ("min_lr_ratio", 0.0, False, 1.0), ("alpha", 0.0, False, 1e3), ("beta", 0.0, False, 1e3),
                ("temperature", 0.0, True, 1e3), ("min_delta", 0.0, False, 1.0), ("val", 0.0, False, 0.9),
                ("test", 0.0, False, 0.9), ("intensity_jitter", 0.0, False, 1.0),
                ("presence_target", 0.0, False, 1.0), ("presence_weight", 0.0, False, 100.0))

MAX_NORMAL_REPEAT = 100


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs besides the data.

    Model:
        image_size: side of the square network input (the preprocessing resize).
        teacher_arch, teacher_kwargs / student_arch, student_kwargs: registry names and
            constructor arguments (:func:`btseg.models.create_model`).
    Optimisation (one loop for teachers and student):
        epochs, batch_size, lr, weight_decay: AdamW; cosine decay to ``lr * min_lr_ratio``
            after ``warmup_epochs`` of linear warm-up (fractional epochs allowed).
        max_steps_per_epoch: cap on optimiser steps per epoch (0 = whole epoch); the tiny
            preset uses it to stay in seconds.
        min_epoch_samples: repeat a small training set (differently augmented) up to at
            least this many samples per epoch, so the malignant teacher, with half the
            benign teacher's images, gets as many steps (0 = off).
        patience, min_delta: early stopping on the validation-Dice plateau: training ends
            after ``patience`` epochs in which validation Dice never beat the best so far by
            more than ``min_delta``; ``epochs`` is then only the upper bound (and the length
            of the cosine schedule).  The best-on-validation weights are kept either way.
        amp: mixed precision, used only on CUDA.
    Distillation (student only):
        kd: ``none | response | feature | dual`` (dual = response + feature).
        teachers: ``routed`` (each sample learns from the teacher of its class, normal
            images from the mean of both) or one fixed ``benign | malignant | mean``.
        alpha, beta, temperature: weights of the response and feature KD terms, and the
            softening temperature of the response term (defaults: what validation chose in
            the 5-fold CV ablation, ``benchmarks/ablation_cv.py``).
    Data:
        val, test: split fractions (:func:`btseg.data.make_splits`).
        teachers_see_normal: train both teachers on normal images too (see docs/distill.md).
        normal_repeat: show every normal training image this many times per epoch (each time
            with its own augmentation draw), for every model; 1 = as often as the others.
        hflip, intensity_jitter: augmentation; jitter is the max relative gain change and
            the max offset in units of full scale.
    Runtime:
        seed, device (``auto`` = cuda if available), num_workers, threshold, progress.
        postprocess: the package's clean-up steps (``largest_component``, ``fill_holes``);
            the metrics in ``model.json`` are measured with them, as the runtime applies them.
        presence_weight: weight of the image-level presence term of the supervised loss
            (:func:`btseg.distill.losses.presence_loss`; every model: teachers and
            students); 0 = off.
        presence_target: the share of validation lesion images the "no lesion" decision
            must still detect; it is calibrated to it after training
            (:mod:`btseg.distill.calibrate`); 0 = no presence decision.
        threads: torch intra-op threads (0 = torch's default, one per core; under DDP, cores
            divided by processes).  On a CPU shared with other jobs use 1: two threads
            fighting for oversubscribed cores ran a demo step 4x slower than one.
    """

    preset: str = "custom"
    image_size: int = 128
    teacher_arch: str = "attention_unet"
    teacher_kwargs: dict[str, Any] = field(default_factory=lambda: {"widths": [8, 16, 32, 64, 128]})
    student_arch: str = "simplified_unet"
    student_kwargs: dict[str, Any] = field(default_factory=lambda: {"widths": [8, 16, 32, 64, 128]})
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    max_steps_per_epoch: int = 0
    min_epoch_samples: int = 0
    patience: int = 10
    min_delta: float = 0.0
    amp: bool = True
    kd: str = "dual"
    teachers: str = "routed"
    # chosen on validation: 5-fold CV on the hard-normal phantom, grid (1, 1, 2) / (0.5, 0.5, 2),
    # dual KD picked (1, 1, 2) in 4 of 5 folds (benchmarks/results/ablation-cv.md; on the phantom
    # with darker fat lobules it had picked (0.5, 0.5, 2) in 3 of 5: the two are close)
    alpha: float = 1.0
    beta: float = 1.0
    temperature: float = 2.0
    val: float = 0.15
    test: float = 0.15
    teachers_see_normal: bool = True
    normal_repeat: int = 1
    hflip: bool = True
    intensity_jitter: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int = 0
    threshold: float = DEFAULT_THRESHOLD
    postprocess: dict[str, bool] = field(default_factory=default_postprocess)
    presence_weight: float = 0.0
    presence_target: float = 0.95
    progress: bool = True

    def __post_init__(self) -> None:
        if self.kd not in KD_MODES:
            raise ConfigError(f"kd mode {self.kd!r}: expected one of {', '.join(KD_MODES)}")
        if self.teachers not in TEACHER_MODES:
            raise ConfigError(f"teachers {self.teachers!r}: expected one of {', '.join(TEACHER_MODES)}")
        if self.device not in DEVICES:
            raise ConfigError(f"device {self.device!r}: expected one of {', '.join(DEVICES)}")
        for name in ("epochs", "batch_size", "image_size", "patience", "normal_repeat"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: expected >= 1")
        if self.normal_repeat > MAX_NORMAL_REPEAT:  # it multiplies the epoch's sample list
            raise ConfigError(f"normal_repeat={self.normal_repeat}: expected <= {MAX_NORMAL_REPEAT}")
        # every float field is finite and in range: NaN passes any `x <= 0` test, so name the range
        for name, low, low_open, high in FLOAT_RANGES:
            v = getattr(self, name)
            ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  and (v > low if low_open else v >= low) and v <= high)
            if not ok:
                rng = f"{'(' if low_open else '['}{low:g}, {high:g}]"
                raise ConfigError(f"{name}={v!r}: expected a finite number in {rng}")
        check_threshold(self.threshold)
        check_postprocess(self.postprocess)
        from btseg.models import model_contract

        for arch, kwargs in ((self.teacher_arch, self.teacher_kwargs), (self.student_arch, self.student_kwargs)):
            model_contract(arch, **kwargs).check_size((self.image_size, self.image_size), "image_size")

    @property
    def spec(self) -> PreprocessSpec:
        """THE preprocessing of every model this config trains."""
        return PreprocessSpec(size=(self.image_size, self.image_size))

    @property
    def post(self) -> PostProcess:
        """The post-processing of every package this config trains: what its metrics are scored with."""
        return PostProcess(self.threshold, dict(self.postprocess))

    @property
    def uses_response_kd(self) -> bool:
        return self.kd in ("response", "dual") and self.alpha > 0

    @property
    def uses_feature_kd(self) -> bool:
        return self.kd in ("feature", "dual") and self.beta > 0

    def replace(self, **overrides: Any) -> "TrainConfig":
        """A copy with some fields changed (``None`` values are ignored); re-validated."""
        unknown = set(overrides) - set(self.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


PRESETS: dict[str, TrainConfig] = {
    # tests and CI: three models in seconds; numbers are meaningless
    "tiny": TrainConfig(preset="tiny", image_size=64, teacher_kwargs={"widths": [8, 16, 32]},
                        student_kwargs={"widths": [8, 16, 32]}, epochs=2, batch_size=8, lr=3e-3,
                        warmup_epochs=0.5, max_steps_per_epoch=3, patience=2),
    # `make demo` on a 2-core CPU: both teachers and two students in about ten minutes
    "demo": TrainConfig(preset="demo", image_size=128, teacher_kwargs={"widths": [8, 16, 32, 64, 128]},
                        student_kwargs={"widths": [8, 16, 32, 64, 128]}, epochs=20, batch_size=8,
                        lr=3e-3, warmup_epochs=1.0, patience=8, min_epoch_samples=160, threads=1),
    # a GPU: the published teacher (34.9 M) and the <= 2.2 M student at 256 px
    "paper": TrainConfig(preset="paper", image_size=256, teacher_kwargs={}, student_kwargs={},
                         epochs=200, batch_size=8, lr=1e-3, warmup_epochs=5.0, patience=30, num_workers=4),
}


def get_preset(name: str) -> TrainConfig:
    """The named preset; :class:`ConfigError` listing the names for an unknown one."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
