"""The one training loop, for teachers and students alike.

AdamW, linear warm-up then cosine decay (per step), validation Dice after every epoch
(:mod:`btseg.metrics` through :func:`btseg.distill.evaluate.evaluate_package`), best
weights kept by validation Dice, early stopping, AMP on CUDA only, fixed seeds, DDP when
launched by ``torchrun``, progress reported to a callback, one JSONL + CSV row per epoch.

The loop knows nothing about distillation: it trains an *objective*, a module whose
``forward(x, y, labels)`` returns ``(loss, parts)`` and whose ``.model`` is what is
validated and kept (see :mod:`btseg.distill.losses`).

Checkpoints (:mod:`btseg.distill.checkpoint`): rank 0 commits one atomic file per epoch;
``--resume`` (automatic after a torchrun restart) continues from it on every rank.

Under DDP ``cfg.batch_size`` is the *global* batch: each of the N processes takes
``batch_size / N`` samples of the same global batches a single process would take
(:class:`~btseg.distill.torchdata.GlobalBatchSampler`).  Every step first agrees across
ranks that each one has its batch, and after the forward that every loss is finite, so a
bad sample or a diverging loss on one rank stops every rank with the same error.
BatchNorm statistics are per rank on CPU (torch's SyncBatchNorm needs a GPU); on CUDA
they are synchronised (``SyncBatchNorm``), as one process computes them.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from btseg.data.sample import Sample
from btseg.distill import checkpoint, ddp
from btseg.distill.config import TrainConfig
from btseg.distill.evaluate import evaluate_package
from btseg.distill.torchdata import GlobalBatchSampler, SegDataset
from btseg.errors import ConfigError

# progress(event, fields): "start" {name, total, completed, world_size, global_batch, per_rank_batch},
# "step" {name, epoch, epochs, loss}, "epoch" {name, row, best}, "end" {name}; rank 0 only
Progress = Callable[[str, dict], None]


@dataclass
class FitResult:
    """What :func:`fit` reports; the model holds its best weights when it returns."""

    best_epoch: int
    best_val_dice: float
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: int | None = None
    world: dict[str, Any] = field(default_factory=dict)  # world_size, global_batch, per_rank_batch...


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # each DataLoader worker derives its numpy/python seeds from torch's per-worker seed
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def lr_at(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``lr`` to ``lr * min_lr_ratio``."""
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))




def _loader(train_set: SegDataset, cfg: TrainConfig, ctx: ddp.DistContext) -> tuple[DataLoader, GlobalBatchSampler]:
    sampler = GlobalBatchSampler(len(train_set), cfg.batch_size, ctx.world_size, ctx.rank, cfg.seed)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.num_workers,
                        worker_init_fn=_worker_init, pin_memory=ctx.device.startswith("cuda"))
    return loader, sampler


def _validate(model: nn.Module, val_samples: Sequence[Sample], train_set: SegDataset, cfg: TrainConfig,
              ctx: ddp.DistContext) -> dict[str, float]:
    summary = evaluate_package(model, val_samples, distances=False, spec=train_set.spec,
                               post=cfg.post, batch_size=cfg.batch_size, device=ctx.device)
    dice = summary["overall"]["dice"]["mean"]
    return {"val_dice": -1.0 if math.isnan(dice) else dice, "val_iou": summary["overall"]["iou"]["mean"]}


def _wrap(objective: nn.Module, ctx: ddp.DistContext) -> nn.Module:
    """DDP around the objective; SyncBatchNorm first on CUDA (gloo/CPU cannot sync BN)."""
    if not ctx.distributed:
        return objective
    if ctx.device.startswith("cuda"):
        objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)  # in place below the top module
    return nn.parallel.DistributedDataParallel(
        objective, device_ids=[ctx.local_rank] if ctx.device.startswith("cuda") else None)


def _step(wrapped: nn.Module, batch_iter, opt, scaler, use_amp: bool, ctx: ddp.DistContext,
          where: str) -> dict[str, float]:
    """One optimiser step on every rank, or one agreed error on every rank."""
    error, batch = None, None
    try:
        x, y, labels, _ = next(batch_iter)
        batch = (x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True), labels)
    except Exception as e:  # noqa: BLE001 - agreed below
        error = e
    ddp.agree(ctx, error, f"{where}: loading the batch")
    try:
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            loss, parts = wrapped(*batch)
        if not torch.isfinite(loss):
            raise ConfigError(f"loss is {loss.item()}; lower the lr")
    except Exception as e:  # noqa: BLE001 - agreed below
        error = e
    ddp.agree(ctx, error, where)
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return {k: float(v) for k, v in {"loss": loss.detach(), **parts}.items()}


def _record(st: dict[str, Any], val: float, epoch: int, cfg: TrainConfig) -> bool:
    """Update the loop state with the epoch's validation Dice; True if it is the best so far."""
    # a plateau: gains under min_delta do not count (the first epoch always sets the best)
    improved = val > st["best_val_dice"] + cfg.min_delta or st["best_epoch"] == 0
    if improved:
        st.update(best_val_dice=val, best_epoch=epoch, bad_epochs=0)
    else:
        st["bad_epochs"] += 1
    st["epoch"] = epoch
    st["stopped_early"] = st["bad_epochs"] >= cfg.patience
    st["finished"] = st["stopped_early"] or epoch == cfg.epochs
    return improved


def fit(objective: nn.Module, train_set: SegDataset, val_samples: Sequence[Sample], cfg: TrainConfig,
        workdir: str | Path, ctx: ddp.DistContext | None = None, *, resume: bool = False,
        name: str = "model", stop_after: int | None = None, progress: Progress | None = None) -> FitResult:
    """Train ``objective.model`` on ``train_set``; select by Dice on ``val_samples``.

    Args:
        objective: module with ``.model`` and ``forward(x, y, labels) -> (loss, parts)``.
        train_set: augmented :class:`SegDataset` (``set_epoch`` is called each epoch).
        val_samples: validation samples (never the test split).
        cfg: hyper-parameters (epochs, global batch, lr, patience, seed...).
        workdir: where checkpoints and logs go (rank 0 writes; a shared directory for multi-node).
        ctx: distributed context (default: a world of one on ``cfg.device``).
        resume: continue from the checkpoint in ``workdir`` when there is one (a finished
            run returns at once with its best weights loaded).
        name: the model's name in progress events, errors and the fault hook.
        stop_after: return after this many epochs of this call, unfinished, as an
            interrupted run would (time-sliced jobs; the resume test).
        progress: called on rank 0 with progress events (see ``Progress``); None: silent.
    """
    ctx = ctx or ddp.DistContext(device=ddp.resolve_device(cfg.device))
    workdir = Path(workdir)
    model: nn.Module = objective.model
    seed_everything(cfg.seed)
    objective.to(ctx.device)
    opt = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=cfg.lr,
                            weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and ctx.device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loader, sampler = _loader(train_set, cfg, ctx)
    steps = len(sampler) if cfg.max_steps_per_epoch <= 0 else min(len(sampler), cfg.max_steps_per_epoch)
    total, warmup = cfg.epochs * steps, max(1, round(cfg.warmup_epochs * steps))
    world = {"world_size": ctx.world_size, "global_batch": sampler.global_batch,
             "per_rank_batch": sampler.local_batch,
             "sync_batchnorm": ctx.distributed and ctx.device.startswith("cuda")}

    st: dict[str, Any] = {"epoch": 0, "step": 0, "best_epoch": 0, "best_val_dice": -1.0, "bad_epochs": 0,
                          "seconds": 0.0, "finished": False, "stopped_early": False, "best_file": None}
    history: list[dict[str, Any]] = []
    resumed_from = None
    with ddp.collective(ctx, f"{name}: reading the checkpoint in {workdir}"):  # every rank, the same file
        if resume and checkpoint.exists(workdir):
            saved, history = checkpoint.load(workdir, objective, opt)
            st.update({k: v for k, v in saved.items() if k in st})
            # more --epochs than the saved run had: carry on (the cosine stretches to the new end)
            st["finished"] = st["stopped_early"] or st["epoch"] >= cfg.epochs
            resumed_from = st["epoch"]
    wrapped = _wrap(objective, ctx)
    say = progress if (progress is not None and ctx.is_main) else (lambda event, fields: None)
    say("start", {"name": name, "total": total, "completed": st["step"], "resumed_from": resumed_from, **world})
    t_start = time.perf_counter() - st["seconds"]
    for epoch in range(st["epoch"] + 1, cfg.epochs + 1):
        if st["finished"]:
            break
        t_epoch = time.perf_counter()
        torch.manual_seed(cfg.seed + epoch)  # epoch-determined: resume == uninterrupted
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        objective.train()
        sums: dict[str, float] = {}
        batches = iter(loader)
        for i in range(steps):
            ddp.fault_point(ctx, name, epoch, i)
            for g in opt.param_groups:
                g["lr"] = lr_at(st["step"], total, warmup, cfg)
            parts = _step(wrapped, batches, opt, scaler, use_amp, ctx, f"{name} epoch {epoch} step {i}")
            st["step"] += 1
            sums = {k: sums.get(k, 0.0) + v for k, v in parts.items()}
            say("step", {"name": name, "epoch": epoch, "epochs": cfg.epochs, "loss": sums["loss"] / (i + 1)})
        row: dict[str, Any] = {"epoch": epoch, "step": st["step"], "lr": opt.param_groups[0]["lr"], **world}
        row.update({f"train_{k}": ddp.all_reduce_mean(ctx, v / steps) for k, v in sums.items()})
        row.update(ddp.on_main(ctx, lambda: _validate(model, val_samples, train_set, cfg, ctx),
                               f"{name}: validation after epoch {epoch}"))
        improved = _record(st, row["val_dice"], epoch, cfg)
        row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 3)
        st["seconds"] = round(time.perf_counter() - t_start, 3)
        history.append(row)
        saved = ddp.on_main(ctx, lambda: checkpoint.save(
            workdir, objective, opt, model, {**st, "config": cfg.to_dict(), "name": name}, history, improved),
            f"{name}: checkpoint of epoch {epoch}")
        st["best_file"] = saved["best_file"]
        say("epoch", {"name": name, "row": row, "best": st["best_val_dice"]})
        if st["stopped_early"] or (stop_after is not None and epoch - (resumed_from or 0) >= stop_after):
            break
    say("end", {"name": name})
    with ddp.collective(ctx, f"{name}: loading the best weights"):  # after rank 0 wrote them
        if st["best_file"]:
            checkpoint.load_best(workdir, model, st["best_file"])
    return FitResult(best_epoch=st["best_epoch"], best_val_dice=st["best_val_dice"], epochs_run=st["epoch"],
                     stopped_early=st["stopped_early"], seconds=st["seconds"], history=history,
                     resumed_from=resumed_from, world=world)
