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

Model selection uses the validation split only; so does the "no lesion" decision, calibrated
after training to ``cfg.presence_target`` of the validation lesion images
(:mod:`btseg.distill.calibrate`, recorded in ``model.json``'s ``postprocess.presence``); the
test split is scored once, after that, through the same post-processing, and written into
``model.json``.

Under ``torchrun`` every stage boundary is a :func:`btseg.distill.ddp.collective` (rank 0
writes ``splits.json`` / a package, every rank waits, then reads), so an error on any
rank ends every rank with the same message.  After an elastic restart
(``TORCHELASTIC_RESTART_COUNT > 0``) the run resumes by itself: a model whose package
is complete with this configuration is not trained again, the others continue from their
last checkpoint.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch

from btseg.data import Dataset, SkippedFilesWarning, Splits, make_splits, open_dataset
from btseg.data.splits import splits_path
from btseg.distill import ddp
from btseg.distill.calibrate import calibrate_model
from btseg.distill.config import TrainConfig
from btseg.distill.evaluate import count_params, evaluate_package, short
from btseg.distill.losses import DistillObjective, SupervisedObjective
from btseg.distill.torchdata import SegDataset
from btseg.distill.train import FitResult, Progress, fit
from btseg.errors import BtsegError, ConfigError
from btseg.layout import config_path
from btseg.models import create_model
from btseg.package import ModelConfig, load_package, save_package
from btseg.runtime.postprocess import PostProcess

TEACHERS = ("benign", "malignant")
# TrainConfig fields that change how a run executes, not the model it makes
RUNTIME_FIELDS = ("device", "num_workers", "threads", "progress")


def prepare(data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig,
            ctx: ddp.DistContext, skip_bad: bool = False) -> tuple[Dataset, Splits]:
    """Open the data set and load ``OUT/splits.json``, computing it first (rank 0) if absent."""
    # every file decoded now (into the cache training uses anyway): a bad item is named
    # before anything trains, with all the others; skip_bad skips them and model.json and
    # splits.json record which (Dataset.describe); under torchrun rank 0 alone names them
    with warnings.catch_warnings():
        if not ctx.is_main:
            warnings.simplefilter("ignore", SkippedFilesWarning)
        dataset = open_dataset(data_dir, include_normal=True, cache=True, verify=True, skip_bad=skip_bad)
    dataset.require_labels()
    path = splits_path(out_dir)
    with ddp.collective(ctx, f"writing {path}"):
        if ctx.is_main and not path.exists():
            make_splits(dataset, val=cfg.val, test=cfg.test, seed=cfg.seed).save(path)
    with ddp.collective(ctx, f"reading {path}"):
        _shared(ctx, path)
        splits = Splits.load(path)
        for part in ("train", "val", "test"):
            splits.select(dataset, part)  # DataError now if the split names images this data lacks
    return dataset, splits


def _shared(ctx: ddp.DistContext, path: Path) -> None:
    """On a rank other than 0, a file rank 0 wrote must be visible: else say why it is not."""
    if not ctx.is_main and not path.exists():
        raise ConfigError(f"{path}: rank 0 wrote it but this rank cannot see it; with torchrun --nnodes > 1, "
                          "--out must be a directory every node shares")


def _complete(out: Path, cfg: TrainConfig, extra: dict[str, Any]) -> dict[str, Any] | None:
    """The summary of the package in ``out`` if it is complete and was trained with ``cfg`` + ``extra``."""
    try:
        pkg = load_package(out)
    except BtsegError:
        return None
    done = pkg.config.training or {}
    want = {**{k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}, **extra}
    if any(done.get(k) != v for k, v in want.items()):
        return None
    m = pkg.config.metrics or {}
    return {"package": str(out), "val": short(m["val"]), "test": short(m["test"]), "seconds": done.get("seconds"),
            "params": done.get("params"), "epochs_run": done.get("epochs_run"), "reused": True} \
        if "val" in m and "test" in m else None


def _part(dataset: Dataset, splits: Splits, part: str, labels: tuple[str, ...]) -> Dataset:
    sub = splits.select(dataset, part)
    return sub.subset([i for i, lab in zip(sub.ids, sub.labels) if lab in labels])


def _train_set(samples: Dataset, cfg: TrainConfig) -> SegDataset:
    if cfg.normal_repeat > 1:  # each normal image shown normal_repeat times per epoch, own draws each
        normal = [i for i, lab in zip(samples.ids, samples.labels) if lab == "normal"]
        samples = samples.subset(list(samples.ids) + normal * (cfg.normal_repeat - 1))
    repeat = -(-cfg.min_epoch_samples // max(1, len(samples)))  # ceil
    return SegDataset(samples, cfg.spec, augment=True, hflip=cfg.hflip, jitter=cfg.intensity_jitter,
                      seed=cfg.seed, repeat=repeat)


def _finish(model: torch.nn.Module, arch: str, kwargs: dict, role: str, cfg: TrainConfig, out: Path,
            dataset: Dataset, splits: Splits, labels: tuple[str, ...], result: FitResult, extra: dict[str, Any],
            ctx: ddp.DistContext) -> dict[str, Any]:
    """Score val and test and write the model package: rank 0, every rank waits for it."""
    return ddp.on_main(ctx, lambda: _score_and_save(model, arch, kwargs, role, cfg, out, dataset, splits, labels,
                                                     result, extra, ctx), f"{out.name}: writing the package")


def _score_and_save(model: torch.nn.Module, arch: str, kwargs: dict, role: str, cfg: TrainConfig, out: Path,
                    dataset: Dataset, splits: Splits, labels: tuple[str, ...], result: FitResult,
                    extra: dict[str, Any], ctx: ddp.DistContext) -> dict[str, Any]:
    post = cfg.post  # scored as the package will run
    val_set = _part(dataset, splits, "val", labels)
    if cfg.presence_target > 0:  # the "no lesion" decision, calibrated on val (btseg.distill.calibrate)
        presence = calibrate_model(model, val_set, cfg.spec, post, cfg.presence_target, ctx.device)
        if presence is not None:
            post = PostProcess(post.threshold, {**post.spec, "presence": presence})
    test = evaluate_package(model, splits.select(dataset, "test"), spec=cfg.spec, post=post, device=ctx.device)
    val = evaluate_package(model, val_set, distances=False, spec=cfg.spec, post=post, device=ctx.device)
    training = {**cfg.to_dict(), **extra, "seconds": result.seconds, "epochs_run": result.epochs_run,
                "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                "resumed_from": result.resumed_from, **result.world, "restarts": ddp.restart_count(),
                "device": ctx.device,
                "params": count_params(model), "torch": torch.__version__, "log": "train/log.jsonl"}
    data = {**dataset.describe(), "splits": str(splits_path(Path(out).parent)), "split_seed": splits.seed,
            "trained_on": list(labels), "n_train": len(_part(dataset, splits, "train", labels)),
            "n_val": val["n"], "n_test": test["n"]}
    mc = ModelConfig(architecture=arch, kwargs=kwargs, preprocess=cfg.spec, threshold=post.threshold,
                     postprocess=dict(post.spec), role=role, preset=cfg.preset, data=data, training=training,
                     metrics={"selection": "val dice", "val": val, "test": test})
    save_package(out, model.cpu().eval(), mc)
    model.to(ctx.device)
    return {"package": str(out), "val": short(val), "test": short(test), "seconds": result.seconds,
            "params": training["params"], "epochs_run": result.epochs_run}


def train_teacher(kind: str, dataset: Dataset, splits: Splits, cfg: TrainConfig, out_dir: str | Path,
                  ctx: ddp.DistContext, resume: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Train the ``benign`` or ``malignant`` teacher into ``OUT/teacher-<kind>/``."""
    if kind not in TEACHERS:
        raise ConfigError(f"teacher {kind!r}: expected benign or malignant")
    labels = (kind, "normal") if cfg.teachers_see_normal else (kind,)
    out = Path(out_dir) / f"teacher-{kind}"
    extra: dict[str, Any] = {"kd": "none", "teachers": None}
    if (done := _reuse(out, cfg, extra, ctx, resume)) is not None:
        return done
    torch.manual_seed(cfg.seed)  # same init whatever ran before in this process
    model = create_model(cfg.teacher_arch, **cfg.teacher_kwargs)
    result = fit(SupervisedObjective(model, cfg.presence_weight),
                 _train_set(_part(dataset, splits, "train", labels), cfg), _part(dataset, splits, "val", labels), cfg, out / "train", ctx, resume=resume,
                 name=f"teacher-{kind}", progress=progress)
    return _finish(model, cfg.teacher_arch, cfg.teacher_kwargs, f"teacher-{kind}", cfg, out, dataset, splits,
                   labels, result, extra, ctx)


def _reuse(out: Path, cfg: TrainConfig, extra: dict[str, Any], ctx: ddp.DistContext,
           resume: bool) -> dict[str, Any] | None:
    """When resuming: the summary of a complete package in ``out`` made with ``cfg`` (rank 0 decides)."""
    if not resume:
        return None
    return ddp.on_main(ctx, lambda: _complete(out, cfg, extra), f"{out.name}: checking for a finished package")


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
                  name: str = "student", progress: Progress | None = None) -> dict[str, Any]:
    """Train the student with ``cfg.kd`` / ``cfg.teachers`` into ``OUT/<name>/``."""
    labels = ("benign", "malignant", "normal")
    out = Path(out_dir) / name
    extra: dict[str, Any] = {"kd": cfg.kd, "teachers": cfg.teachers if cfg.kd != "none" else None}
    if (done := _reuse(out, cfg, extra, ctx, resume)) is not None:
        return done
    torch.manual_seed(cfg.seed)
    student = create_model(cfg.student_arch, **cfg.student_kwargs)
    if cfg.kd == "none":
        objective: torch.nn.Module = SupervisedObjective(student, cfg.presence_weight)
    else:
        tdir = Path(teacher_dir or out_dir)
        with ddp.collective(ctx, f"loading the teachers from {tdir}"):  # every rank, after rank 0 wrote them
            for kind in TEACHERS:
                _shared(ctx, config_path(tdir / f"teacher-{kind}"))
            teachers = load_teachers(tdir, cfg)
        objective = DistillObjective(student, teachers, cfg.kd, cfg.teachers,
                                     cfg.alpha, cfg.beta, cfg.temperature, cfg.presence_weight)
        extra["teacher_packages"] = [str(tdir / f"teacher-{k}") for k in TEACHERS]
    result = fit(objective, _train_set(_part(dataset, splits, "train", labels), cfg),
                 _part(dataset, splits, "val", labels), cfg, out / "train", ctx, resume=resume, name=name,
                 progress=progress)
    # a reference trained by the student path (baseline-unet, baseline-unext) says what it is
    role = "baseline" if name.startswith("baseline") else "student"
    return _finish(student, cfg.student_arch, cfg.student_kwargs, role, cfg, out, dataset, splits,
                   labels, result, extra, ctx)


def run(stage: str, data_dir: str | Path, out_dir: str | Path, cfg: TrainConfig, *, resume: bool = False,
        teacher_dir: str | Path | None = None, name: str = "student",
        teacher_kinds: tuple[str, ...] = TEACHERS, progress: Progress | None = None,
        skip_bad: bool = False) -> dict[str, Any]:
    """``teachers``, ``student`` or ``all``; works the same under ``torchrun``.

    ``teacher_kinds`` trains only some teachers (``("benign",)``), so that two processes
    can train the two teachers side by side on a 2-core machine.  After a torchrun
    restart ``resume`` is on whatever was asked (finished packages are kept, the rest
    continue from their checkpoints).  ``progress`` receives rank 0's training events.
    ``skip_bad`` trains without the data set's bad items (each named once, and recorded in
    ``splits.json`` and every ``model.json``) instead of refusing the data set.

    Returns ``{model name: {"package", "val", "test", "seconds", ...}}`` (empty off rank 0).
    """
    if stage not in ("teachers", "student", "all"):
        raise ConfigError(f"stage {stage!r}: expected teachers, student or all")
    ctx = ddp.init_distributed(cfg.device)
    resume = resume or ddp.restart_count() > 0
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        t0 = time.perf_counter()
        dataset, splits = prepare(data_dir, out_dir, cfg, ctx, skip_bad)
        results: dict[str, Any] = {}
        if stage in ("teachers", "all"):
            for kind in teacher_kinds:
                results[f"teacher-{kind}"] = train_teacher(kind, dataset, splits, cfg, out_dir, ctx, resume,
                                                             progress)
        if stage in ("student", "all"):
            results[name] = train_student(dataset, splits, cfg, out_dir, ctx, resume, teacher_dir, name,
                                              progress)
        if ctx.is_main:
            results["_seconds"] = round(time.perf_counter() - t0, 3)
        return results if ctx.is_main else {}
    finally:
        ddp.cleanup(ctx)
