"""The one training loop, for teachers and students alike.

AdamW, linear warm-up then cosine decay (per step), validation Dice after every epoch
(:mod:`btseg.metrics` through :func:`btseg.distill.evaluate.evaluate_package`), best
weights kept by validation Dice, early stopping, AMP on CUDA only, fixed seeds, DDP when
launched by ``torchrun``, a rich progress bar, and one JSONL + CSV row per epoch.

The loop knows nothing about distillation: it trains an *objective*, a module whose
``forward(x, y, labels)`` returns ``(loss, parts)`` and whose ``.model`` is what is
validated and kept (see :mod:`btseg.distill.losses`).

Files in ``workdir`` (rank 0 writes them, atomically)::

    state.json          epoch, step, best Dice/epoch, patience counter, seconds, config
    state.safetensors   the objective's trainable state (model + adapters) and AdamW moments
    best.safetensors    the model at its best validation Dice
    log.jsonl, log.csv  one row per epoch

No pickle anywhere: ``--resume`` rebuilds the optimizer from safetensors + JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, DistributedSampler

from btseg.data.sample import Sample
from btseg.distill import ddp
from btseg.distill.config import TrainConfig
from btseg.distill.evaluate import evaluate_package
from btseg.distill.torchdata import SegDataset
from btseg.errors import ArtifactError, ConfigError
from btseg.io import atomic_path, atomic_write, read_json, write_json


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


# -- checkpoint state (safetensors + JSON) ---------------------------------------------------
def save_state(workdir: Path, objective: nn.Module, opt: torch.optim.Optimizer, scalars: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in objective.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    with atomic_path(workdir / "state.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(workdir / "state.json", {**scalars, "param_groups": osd["param_groups"]})


def load_state(workdir: Path, objective: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    scalars = read_json(workdir / "state.json")
    tensors = load_file(str(workdir / "state.safetensors"))
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        objective.load_state_dict(model_sd, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{workdir}: checkpoint does not match this model ({str(e).splitlines()[0]})") from e
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    return scalars


def _write_logs(workdir: Path, history: list[dict[str, Any]]) -> None:
    with atomic_write(workdir / "log.jsonl") as f:
        f.writelines(json.dumps(r) + "\n" for r in history)
    cols = list(dict.fromkeys(k for r in history for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(history)
    with atomic_write(workdir / "log.csv") as f:
        f.write(buf.getvalue())


def _load_best(workdir: Path, model: nn.Module) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(workdir / "best.safetensors")))


def _progress(enabled: bool):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}  val dice {task.fields[dice]}"),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not enabled, transient=False)


def fit(objective: nn.Module, train_set: SegDataset, val_samples: Sequence[Sample], cfg: TrainConfig,
        workdir: str | Path, ctx: ddp.DistContext | None = None, *, resume: bool = False,
        name: str = "model", stop_after: int | None = None) -> FitResult:
    """Train ``objective.model`` on ``train_set``; select by Dice on ``val_samples``.

    Args:
        objective: module with ``.model`` and ``forward(x, y, labels) -> (loss, parts)``.
        train_set: augmented :class:`SegDataset` (``set_epoch`` is called each epoch).
        val_samples: validation samples (never the test split).
        cfg: hyper-parameters (epochs, lr, patience, seed...).
        workdir: where state, best weights and logs go.
        ctx: distributed context (default: a world of one on ``cfg.device``).
        resume: continue from ``workdir/state.json`` when it exists (a finished run returns
            at once with its best weights loaded).
        name: shown in the progress bar.
        stop_after: return after this many epochs of this call, unfinished, as an
            interrupted run would (time-sliced jobs; the resume test).
    """
    ctx = ctx or ddp.DistContext(device=ddp.resolve_device(cfg.device))
    workdir = Path(workdir)
    model: nn.Module = objective.model
    seed_everything(cfg.seed)
    objective.to(ctx.device)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    use_amp = cfg.amp and ctx.device.startswith("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    sampler = DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=True, seed=cfg.seed,
                                 drop_last=True) if ctx.distributed else None
    gen = torch.Generator()
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        drop_last=len(train_set) // max(1, ctx.world_size) > cfg.batch_size,
                        num_workers=cfg.num_workers, generator=gen, worker_init_fn=_worker_init,
                        pin_memory=ctx.device.startswith("cuda"))
    steps = len(loader) if cfg.max_steps_per_epoch <= 0 else min(len(loader), cfg.max_steps_per_epoch)
    if steps == 0:
        raise ConfigError(f"{name}: no training batch (n={len(train_set)}, batch_size={cfg.batch_size})")
    total, warmup = cfg.epochs * steps, max(1, round(cfg.warmup_epochs * steps))

    st = {"epoch": 0, "step": 0, "best_epoch": 0, "best_val_dice": -1.0, "bad_epochs": 0,
          "seconds": 0.0, "finished": False, "stopped_early": False}
    history: list[dict[str, Any]] = []
    resumed_from = None
    if resume and (workdir / "state.json").exists():
        st.update({k: v for k, v in load_state(workdir, objective, opt).items() if k in st})
        # more --epochs than the saved run had: carry on (the cosine stretches to the new end)
        st["finished"] = st["stopped_early"] or st["epoch"] >= cfg.epochs
        resumed_from = st["epoch"]
        if (workdir / "log.jsonl").exists():
            history = [json.loads(line) for line in (workdir / "log.jsonl").read_text().splitlines() if line]
    if ctx.is_main:
        workdir.mkdir(parents=True, exist_ok=True)
    wrapped = objective
    if ctx.distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            objective, device_ids=[ctx.local_rank] if ctx.device.startswith("cuda") else None)

    t_start = time.perf_counter() - st["seconds"]
    with _progress(cfg.progress and ctx.is_main) as bar:
        task = bar.add_task(name, total=total, completed=st["step"], loss=float("nan"),
                            dice=f"{st['best_val_dice']:.4f}" if st["epoch"] else "-")
        for epoch in range(st["epoch"] + 1, cfg.epochs + 1):
            if st["finished"]:
                break
            t_epoch = time.perf_counter()
            torch.manual_seed(cfg.seed + epoch)  # epoch-determined: resume == uninterrupted
            gen.manual_seed(cfg.seed + epoch)
            train_set.set_epoch(epoch)
            if sampler is not None:
                sampler.set_epoch(epoch)
            objective.train()
            sums: dict[str, float] = {}
            for i, (x, y, labels, _) in enumerate(loader):
                if i >= steps:
                    break
                for g in opt.param_groups:
                    g["lr"] = lr_at(st["step"], total, warmup, cfg)
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    loss, parts = wrapped(x, y, labels)
                if not torch.isfinite(loss):
                    raise ConfigError(f"{name}: loss is {loss.item()} at epoch {epoch}, step {i}; lower the lr")
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                st["step"] += 1
                for k, v in {"loss": loss.detach(), **parts}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update(task, advance=1, loss=sums["loss"] / (i + 1), description=f"{name} {epoch}/{cfg.epochs}")
            row: dict[str, Any] = {"epoch": epoch, "step": st["step"], "lr": opt.param_groups[0]["lr"]}
            row.update({f"train_{k}": ddp.all_reduce_mean(ctx, v / steps) for k, v in sums.items()})
            val = -1.0
            if ctx.is_main:
                summary = evaluate_package(model, val_samples, distances=False, spec=train_set.spec,
                                           threshold=cfg.threshold, batch_size=cfg.batch_size, device=ctx.device)
                val = summary["overall"]["dice"]["mean"]
                row["val_iou"] = summary["overall"]["iou"]["mean"]
            val = ddp.broadcast_float(ctx, val)
            val = -1.0 if math.isnan(val) else val
            row["val_dice"] = val
            improved = val > st["best_val_dice"]
            if improved:
                st.update(best_val_dice=val, best_epoch=epoch, bad_epochs=0)
            else:
                st["bad_epochs"] += 1
            st["epoch"] = epoch
            st["stopped_early"] = st["bad_epochs"] >= cfg.patience
            st["finished"] = st["stopped_early"] or epoch == cfg.epochs
            row["epoch_seconds"] = round(time.perf_counter() - t_epoch, 3)
            st["seconds"] = round(time.perf_counter() - t_start, 3)
            history.append(row)
            if ctx.is_main:
                if improved:
                    from safetensors.torch import save_file

                    with atomic_path(workdir / "best.safetensors") as tmp:
                        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
                save_state(workdir, objective, opt, {**st, "config": cfg.to_dict(), "name": name})
                _write_logs(workdir, history)
            bar.update(task, dice=f"{val:.4f} (best {st['best_val_dice']:.4f})")
            if st["stopped_early"] or (stop_after is not None and epoch - (resumed_from or 0) >= stop_after):
                break
    ddp.barrier(ctx)
    _load_best(workdir, model)
    return FitResult(best_epoch=st["best_epoch"], best_val_dice=st["best_val_dice"], epochs_run=st["epoch"],
                     stopped_early=st["stopped_early"], seconds=st["seconds"], history=history,
                     resumed_from=resumed_from)
