"""Distributed data parallel, the small part of it training needs.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) :func:`init_distributed` joins
the process group from the environment variables: ``gloo`` on CPU, ``nccl`` on CUDA.  A
plain ``python`` run is a world of one and needs no process group.

The rules every distributed step follows (docs/distill.md, "Several processes"):

* **rank 0 writes, every rank waits, then reads.**  Each place where one rank reads what
  another wrote (``splits.json``, teacher packages, checkpoints, best weights) sits behind
  :func:`collective`, which is a barrier.
* **one error, every rank.**  :func:`collective` catches an exception on any rank and
  makes every rank raise the same typed error (``rank N: <message>``) instead of leaving
  the others to die on a broken gloo/nccl connection.  :func:`on_main` runs a function on
  rank 0 (validation, scoring) and hands its result, or its error, to every rank.
* a finite timeout on every collective (:data:`TIMEOUT_ENV`, default 30 min: longer than
  rank 0 ever works alone, scoring a test split with HD95, and short enough that a hung
  peer ends the job instead of holding GPUs for the default hours).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from btseg.errors import BtsegError, ConfigError

T = TypeVar("T")
TIMEOUT_ENV = "BTSEG_DDP_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800.0


class RankFailedError(BtsegError):
    """An unexpected (non-btseg) exception on one rank, reported on every rank."""

    exit_code = 1


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


def restart_count() -> int:
    """How many times torchrun restarted this worker group (0 outside torchrun / first try)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def timeout() -> datetime.timedelta:
    """The collective timeout: ``$BTSEG_DDP_TIMEOUT_S`` seconds (default 1800)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError as e:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds") from e
    if seconds <= 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds > 0")
    return datetime.timedelta(seconds=seconds)


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
        # torchrun's store outlives a restart and still holds the dead attempt's gloo/nccl
        # addresses under the same keys (the new group then hangs connecting to them), so
        # each attempt gets its own key prefix in that store
        store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout()))
        store = dist.PrefixStore(f"btseg/attempt-{restart_count()}", store)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", store=store, rank=rank,
                                world_size=world, timeout=timeout())
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def _describe(error: BaseException) -> tuple[str, str]:
    if isinstance(error, BtsegError):
        return type(error).__name__, str(error)
    return "", f"{type(error).__name__}: {error}"


def _typed(cls_name: str, message: str) -> BtsegError:
    """The btseg error class named ``cls_name`` (any subclass of BtsegError), else RankFailedError."""
    todo, classes = [BtsegError], {}
    while todo:
        c = todo.pop()
        classes[c.__name__] = c
        todo.extend(c.__subclasses__())
    cls = classes.get(cls_name, RankFailedError)
    try:
        return cls(message)
    except TypeError:  # a subclass with another constructor
        return RankFailedError(message)


def agree(ctx: DistContext, error: BaseException | None, where: str) -> None:
    """A barrier that also agrees on errors: raise on every rank if any rank has one.

    The first failing rank's error is raised everywhere as the same btseg error class with
    ``rank N (where): `` in front; an exception that is not a btseg error (a bug) becomes
    ``RankFailedError`` everywhere, and its own rank prints its traceback first.
    """
    if not ctx.distributed:
        if error is not None:
            raise error
        return
    flag = torch.tensor([1 if error is not None else 0], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(flag)
    if int(flag.item()) == 0:
        return
    if error is not None and not isinstance(error, BtsegError):
        traceback.print_exception(error, file=sys.stderr)  # a bug: its rank keeps the traceback
    reports: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(reports, None if error is None else _describe(error))
    rank, (cls_name, message) = next((r, m) for r, m in enumerate(reports) if m is not None)
    raise _typed(cls_name, f"rank {rank} ({where}): {message}") from error


@contextlib.contextmanager
def collective(ctx: DistContext, where: str) -> Iterator[None]:
    """Run the block on every rank, then :func:`agree` (a barrier; one error for all ranks).

    Every rank must enter the same ``collective`` blocks in the same order.
    """
    error: BaseException | None = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 - handed to every rank by agree()
        error = e
    agree(ctx, error, where)


def on_main(ctx: DistContext, fn: Callable[[], T], where: str) -> T:
    """``fn()`` on rank 0; its result (picklable) on every rank, or its error on every rank."""
    result: list[Any] = [None]
    with collective(ctx, where):
        if ctx.is_main:
            result[0] = fn()
    if ctx.distributed:
        dist.broadcast_object_list(result, src=0)
    return result[0]


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


# -- test-only fault injection ----------------------------------------------------------------
FAULT_ENV = "BTSEG_FAULT_KILL_AT"


def fault_point(ctx: DistContext, name: str, epoch: int, step: int) -> None:
    """TEST-ONLY fault injection: SIGKILL this process where ``$BTSEG_FAULT_KILL_AT`` says.

    Inert unless the variable is set.  Its value is ``key=value`` pairs, e.g.
    ``rank=1,name=teacher-malignant,epoch=2,step=1``: kill rank 1 before step 1 (0-based)
    of epoch 2 of that model, on torchrun's first try only (``restart=0``, the default),
    so that the restarted group can finish.  Keys left out match anything.  The elastic
    restart test uses it to kill a worker mid-epoch as a crash or an OOM killer would.
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    try:
        want = dict(kv.split("=", 1) for kv in spec.split(",") if kv)
    except ValueError as e:
        raise ConfigError(f"{FAULT_ENV}={spec!r}: expected key=value pairs, e.g. rank=1,epoch=1,step=2") from e
    here = {"rank": str(ctx.rank), "name": name, "epoch": str(epoch), "step": str(step),
            "restart": str(restart_count())}
    if set(want) - set(here):
        raise ConfigError(f"{FAULT_ENV}={spec!r}: keys are {', '.join(here)}")
    want.setdefault("restart", "0")
    if all(here[k] == v for k, v in want.items()):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
