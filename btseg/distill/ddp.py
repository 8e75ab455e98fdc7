"""Distributed data parallel, the small part of it training needs.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) :func:`init_distributed` joins
the process group from the environment variables: ``gloo`` on CPU, ``nccl`` on CUDA.  A
plain ``python`` run is a world of one and needs no process group.  Only rank 0 writes
files and shows progress; validation runs on rank 0 and its Dice is broadcast, so every
rank takes the same early-stopping and best-checkpoint decisions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from btseg.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available; ``cuda`` without a GPU is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda': no CUDA device is available; use --device cpu")
    return device


def init_distributed(device: str = "auto") -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE > 1``; else a world of one."""
    device = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    else:
        # share the cores instead of every process starting one thread per core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", init_method="env://")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_float(ctx: DistContext, value: float, src: int = 0) -> float:
    """Rank ``src``'s value on every rank."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, src)
    return float(t.item())


def all_reduce_mean(ctx: DistContext, value: float) -> float:
    """Mean of a scalar over ranks (training-loss logging)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def cleanup(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
