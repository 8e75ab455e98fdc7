"""Teachers, student, all: data + split + training loop + model package, per model.

Layout of an output directory::

    OUT/splits.json                computed once (make_splits, seed), shared by every model
    OUT/teacher-benign/            model package (model.safetensors + model.json) + train/
    OUT/teacher-malignant/
    OUT/student/                   (``name`` chooses it, e.g. student-nokd for an ablation)

Which images each model learns from (docs/distill.md says why):

* the benign teacher: benign + normal training images; the malignant teacher: malignant +
  normal (``cfg.teachers_see_normal``).  Normal images are routed to the *mean* of both
  teachers during distillation, so both must have learnt to predict an empty map there.
* the student: every training image, each with its routed teacher.

Model selection uses the validation split only; the test split is scored once, after
training, and written into ``model.json``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from btseg.data import Dataset, Splits, make_splits, open_dataset
from btseg.distill import ddp
from btseg.distill.config import TrainConfig
from btseg.distill.evaluate import count_params, evaluate_package, short
from btseg.distill.losses import DistillObjective, SupervisedObjective
from btseg.distill.torchdata import SegDataset
from btseg.distill.train import fit
from btseg.errors import ConfigError
from btseg.models import create_model
from btseg.package import ModelConfig, load_package, save_package

TEACHERS = ("benign", "malignant")
SPLITS_FILE = "splits.json"


def prepare(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig,
            ctx: ddp.DistContext) -> tuple[Dataset, Splits]:
    """Open the data set and load ``OUT/splits.json``, computing it first (rank 0) if absent."""
    dataset = open_dataset(data_dir, include_normal=True, cache=True)
    dataset.require_labels()
    path = Path(out_dir) / SPLITS_FILE
    if ctx.is_main and not path.exists():
        make_splits(dataset, val=cfg.val, test=cfg.test, seed=cfg.seed).save(path)
    ddp.barrier(ctx)
    splits = Splits.load(path)
    for part in ("train", "val", "test"):
        splits.select(dataset, part)  # DataError now if the split names images this data lacks
    return dataset, splits


def _part(dataset: Dataset, splits: Splits, part: str, labels: tuple[str, ...]) -> Dataset:
    sub = splits.select(dataset, part)
    return sub.subset([i for i, lab in zip(sub.ids, sub.labels) if lab in labels])


def _train_set(samples: Dataset, cfg: TrainConfig) -> SegDataset:
    repeat = -(-cfg.min_epoch_samples // max(1, len(samples)))  # ceil
    return SegDataset(samples, cfg.spec, augment=True, hflip=cfg.hflip, jitter=cfg.intensity_jitter,
                      seed=cfg.seed, repeat=repeat)


def _finish(model: torch.nn.Module, arch: str, kwargs: dict, role: str, cfg: TrainConfig, out: Path,
            dataset: Dataset, splits: Splits, labels: tuple[str, ...], result, extra: dict[str, Any],
            ctx: ddp.DistContext) -> dict[str, Any]:
    """Score val and test (rank 0) and write the model package."""
    if not ctx.is_main:
        return {}
    test = evaluate_package(model, splits.select(dataset, "test"), spec=cfg.spec,
                            threshold=cfg.threshold, device=ctx.device)
    val = evaluate_package(model, _part(dataset, splits, "val", labels), distances=False,
                           spec=cfg.spec, threshold=cfg.threshold, device=ctx.device)
    training = {**cfg.to_dict(), **extra, "seconds": result.seconds, "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                "resumed_from": result.resumed_from, "world_size": ctx.world_size, "device": ctx.device,
                "params": count_params(model), "torch": torch.__version__, "log": "train/log.jsonl"}
    data = {**dataset.describe(), "splits": str(Path(out).parent / SPLITS_FILE), "split_seed": splits.seed,
            "trained_on": list(labels), "n_train": len(_part(dataset, splits, "train", labels)),
            "n_val": val["n"], "n_test": test["n"]}
    mc = ModelConfig(architecture=arch, kwargs=kwargs, preprocess=cfg.spec, threshold=cfg.threshold,
                     role=role, preset=cfg.preset, data=data, training=training,
                     metrics={"selection": "val dice", "val": val, "test": test})
    save_package(out, model.cpu().eval(), mc)
    model.to(ctx.device)
    return {"package": str(out), "val": short(val), "test": short(test), "seconds": result.seconds,
            "params": training["params"], "epochs_run": result.epochs_run}


def train_teacher(kind: str, dataset: Dataset, splits: Splits, cfg: TrainConfig, out_dir: str | Path,
                  ctx: ddp.DistContext, resume: bool = False) -> dict[str, Any]:
    """Train the ``benign`` or ``malignant`` teacher into ``OUT/teacher-<kind>/``."""
    if kind not in TEACHERS:
        raise ConfigError(f"teacher {kind!r}: expected benign or malignant")
    labels = (kind, "normal") if cfg.teachers_see_normal else (kind,)
    out = Path(out_dir) / f"teacher-{kind}"
    torch.manual_seed(cfg.seed)  # same init whatever ran before in this process
    model = create_model(cfg.teacher_arch, **cfg.teacher_kwargs)
    result = fit(SupervisedObjective(model), _train_set(_part(dataset, splits, "train", labels), cfg),
                 _part(dataset, splits, "val", labels), cfg, out / "train", ctx, resume=resume,
                 name=f"teacher-{kind}")
    return _finish(model, cfg.teacher_arch, cfg.teacher_kwargs, f"teacher-{kind}", cfg, out, dataset, splits,
                   labels, result, {"kd": "none", "teachers": None}, ctx)


def load_teachers(teacher_dir: str | Path, cfg: TrainConfig) -> list[torch.nn.Module]:
    """The benign and malignant teacher packages under ``teacher_dir``, frozen."""
    models = []
    for kind in TEACHERS:
        pkg = load_package(Path(teacher_dir) / f"teacher-{kind}")
        if tuple(pkg.config.input_size) != cfg.spec.size:
            raise ConfigError(f"{pkg.root}: teacher input {pkg.config.input_size} differs from the student's "
                              f"{cfg.spec.size}; train teachers with the same preset")
        models.append(pkg.build_model().requires_grad_(False))
    return models


def train_student(dataset: Dataset, splits: Splits, cfg: TrainConfig, out_dir: str | Path,
                  ctx: ddp.DistContext, resume: bool = False, teacher_dir: str | Path | None = None,
                  name: str = "student") -> dict[str, Any]:
    """Train the student with ``cfg.kd`` / ``cfg.teachers`` into ``OUT/<name>/``."""
    labels = ("benign", "malignant", "normal")
    out = Path(out_dir) / name
    torch.manual_seed(cfg.seed)
    student = create_model(cfg.student_arch, **cfg.student_kwargs)
    extra: dict[str, Any] = {"kd": cfg.kd, "teachers": cfg.teachers if cfg.kd != "none" else None}
    if cfg.kd == "none":
        objective: torch.nn.Module = SupervisedObjective(student)
    else:
        tdir = Path(teacher_dir or out_dir)
        objective = DistillObjective(student, load_teachers(tdir, cfg), cfg.kd, cfg.teachers,
                                     cfg.alpha, cfg.beta, cfg.temperature)
        extra["teacher_packages"] = [str(tdir / f"teacher-{k}") for k in TEACHERS]
    result = fit(objective, _train_set(_part(dataset, splits, "train", labels), cfg),
                 _part(dataset, splits, "val", labels), cfg, out / "train", ctx, resume=resume, name=name)
    # a reference trained by the student path (baseline-unet, baseline-unext) says what it is
    role = "baseline" if name.startswith("baseline") else "student"
    return _finish(student, cfg.student_arch, cfg.student_kwargs, role, cfg, out, dataset, splits,
                   labels, result, extra, ctx)


def run(stage: str, data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
        teacher_dir: str | Path | None = None, name: str = "student",
        teacher_kinds: tuple[str, ...] = TEACHERS) -> dict[str, Any]:
    """``teachers``, ``student`` or ``all``; works the same under ``torchrun``.

    ``teacher_kinds`` trains only some teachers (``("benign",)``), so that two processes
    can train the two teachers side by side on a 2-core machine.

    Returns ``{model name: {"package", "val", "test", "seconds", ...}}`` (empty off rank 0).
    """
    if stage not in ("teachers", "student", "all"):
        raise ConfigError(f"stage {stage!r}: expected teachers, student or all")
    ctx = ddp.init_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        dataset, splits = prepare(data_dir, out_dir, cfg, ctx)
        results: dict[str, Any] = {}
        if stage in ("teachers", "all"):
            for kind in teacher_kinds:
                results[f"teacher-{kind}"] = train_teacher(kind, dataset, splits, cfg, out_dir, ctx, resume)
        if stage in ("student", "all"):
            results[name] = train_student(dataset, splits, cfg, out_dir, ctx, resume, teacher_dir, name)
        if ctx.is_main:
            results["_seconds"] = round(time.perf_counter() - t0, 3)
        return results if ctx.is_main else {}
    finally:
        ddp.cleanup(ctx)
