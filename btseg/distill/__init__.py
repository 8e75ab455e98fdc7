"""btseg.distill: teachers, student and dual-path joint knowledge distillation (LightBTSeg).

Example::

    >>> from btseg.distill import get_preset, run                      # doctest: +SKIP
    >>> run("all", "phantom/", "runs/demo", get_preset("demo"))
    >>> evaluate_package("runs/demo/student", samples)["overall"]["dice"]["mean"]

See docs/distill.md for the CLI and torchrun usage.
"""

from btseg.distill.config import KD_MODES, PRESETS, TEACHER_MODES, TrainConfig, get_preset
from btseg.distill.evaluate import count_params, evaluate_package, predict_probs
from btseg.distill.losses import (DistillObjective, FeatureAdapters, SupervisedObjective, feature_kd,
                                  response_kd, routed_targets, seg_loss, soft_dice_loss, teacher_weights)
from btseg.distill.pipeline import load_teachers, prepare, run, train_student, train_teacher
from btseg.distill.torchdata import SegDataset
from btseg.distill.train import FitResult, fit

__all__ = ["KD_MODES", "PRESETS", "TEACHER_MODES", "DistillObjective", "FeatureAdapters", "FitResult",
           "SegDataset", "SupervisedObjective", "TrainConfig", "count_params", "evaluate_package",
           "feature_kd", "fit", "get_preset", "load_teachers", "predict_probs", "prepare", "response_kd",
           "routed_targets", "run", "seg_loss", "soft_dice_loss", "teacher_weights", "train_student",
           "train_teacher"]
