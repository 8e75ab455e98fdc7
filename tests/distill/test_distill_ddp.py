"""DDP on CPU with gloo, for real: torchrun runs of 2 processes, a killed rank, 1 vs 2 processes.

The torchrun runs share one data set and one uninterrupted 2-process ``all`` run (a module
fixture), which the restart and 1-vs-2 tests compare against.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import btseg
from btseg.distill import ddp
from btseg.distill.torchdata import GlobalBatchSampler
from btseg.errors import ConfigError
from btseg.package import load_package

MODELS = ("teacher-benign", "teacher-malignant", "student")
# every training set of the 24-image phantom has >= 6 images: the same global batch for 1 and 2 processes
ARGS = ["--preset", "tiny", "--batch-size", "6", "--device", "cpu", "--no-progress"]
ROOT = str(Path(btseg.__file__).resolve().parents[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != ddp.FAULT_ENV}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]), **extra)
    return env


def _torchrun(data: Path, out: Path, *torchrun_args: str, **env: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master-port",
           str(_free_port()), *torchrun_args, "-m", "btseg.cli.distill", "all", "--data", str(data),
           "--out", str(out), *ARGS]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(**env))


def _log(out: Path, model: str) -> list[dict]:
    return [json.loads(r) for r in (out / model / "train" / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="session")
def two_procs(phantom_dir, tmp_path_factory) -> Path:
    """The uninterrupted 2-process run, made once even when xdist workers share the tests."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this session's directory, the same for every xdist worker
    out = shared / "ddp-all"
    with FileLock(str(shared / "ddp-all.lock")):
        if not (shared / "ddp-all.done").exists():
            p = _torchrun(phantom_dir, out)
            assert p.returncode == 0, p.stderr[-3000:]
            (shared / "ddp-all.done").write_text("ok")
    return out


def test_all_under_torchrun_writes_the_three_packages(two_procs):
    assert sorted(x.name for x in two_procs.iterdir()) == sorted(["splits.json", *MODELS])
    for name in MODELS:
        training = load_package(two_procs / name).config.training
        assert training["world_size"] == 2 and training["global_batch"] == 6 and training["per_rank_batch"] == 3
        assert training["restarts"] == 0 and training["sync_batchnorm"] is False
        assert all(r["world_size"] == 2 and r["global_batch"] == 6 for r in _log(two_procs, name))
    student = load_package(two_procs / "student").config.training
    assert student["kd"] == "dual" and student["teachers"] == "routed"


def test_a_killed_rank_restarts_the_group_which_resumes_and_finishes(two_procs, phantom_dir, tmp_path):
    out = tmp_path / "killed"
    p = _torchrun(phantom_dir, out, "--max-restarts", "1",
                  BTSEG_FAULT_KILL_AT="rank=1,name=teacher-malignant,epoch=2,step=0")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "exitcode: -9" in p.stderr  # rank 1 was SIGKILLed; torchrun restarted the group
    records = {m: load_package(out / m).config.training for m in MODELS}
    assert records["teacher-benign"]["restarts"] == 0  # finished before the kill: kept, not retrained
    assert records["teacher-malignant"]["restarts"] == 1 and records["teacher-malignant"]["resumed_from"] == 1
    assert records["student"]["restarts"] == 1 and records["student"]["resumed_from"] is None
    for m in MODELS:  # resuming from the epoch-1 checkpoint equals not being killed
        got, want = _log(out, m), _log(two_procs, m)
        assert [r["epoch"] for r in got] == [r["epoch"] for r in want]
        np.testing.assert_allclose([r["train_loss"] for r in got], [r["train_loss"] for r in want], rtol=1e-4)
        assert [r["val_dice"] for r in got] == pytest.approx([r["val_dice"] for r in want], abs=1e-6)


def test_one_and_two_processes_train_the_same_models(two_procs, phantom_dir, tmp_path):
    """Same global batch, seed and data: the same models within the stated tolerance.

    Not bit-identical: per-rank BatchNorm statistics (3 samples each instead of 6: SyncBatchNorm
    needs a GPU) and the all-reduce summing gradients in another order.  Tolerances (docs/distill.md):
    train loss per epoch within 2 % relative, validation Dice within 0.02 absolute.
    """
    from click.testing import CliRunner

    from btseg.cli.distill import main

    out = tmp_path / "one"
    r = CliRunner().invoke(main, ["all", "--data", str(phantom_dir), "--out", str(out), *ARGS])
    assert r.exit_code == 0, r.output
    for m in MODELS:
        one, two = _log(out, m), _log(two_procs, m)
        assert [(r["world_size"], r["global_batch"]) for r in one] == [(1, 6)] * len(one)
        assert [r["step"] for r in one] == [r["step"] for r in two]  # same number of optimiser steps
        np.testing.assert_allclose([r["train_loss"] for r in two], [r["train_loss"] for r in one], rtol=0.02)
        dice_one = load_package(out / m).config.metrics["val"]["overall"]["dice"]["mean"]
        dice_two = load_package(two_procs / m).config.metrics["val"]["overall"]["dice"]["mean"]
        assert abs(dice_one - dice_two) <= 0.02, (m, dice_one, dice_two)
    assert json.loads((out / "splits.json").read_text()) == json.loads((two_procs / "splits.json").read_text())


_AGREE = """
import sys
from btseg.distill import ddp
from btseg.errors import BtsegError, DataError
ctx = ddp.init_distributed("cpu")
try:
    with ddp.collective(ctx, "reading the data"):
        if ctx.rank == int(sys.argv[1]):
            raise DataError("img_7.png: truncated PNG")
except BtsegError as e:
    print(type(e).__name__, e, flush=True)
try:
    ddp.on_main(ctx, lambda: 1 / 0, "validation")
except BtsegError as e:
    print(type(e).__name__, e, flush=True)
print("value", ddp.on_main(ctx, lambda: {"dice": 0.5}, "validation"), flush=True)
ddp.cleanup(ctx)
"""


def test_an_error_on_one_rank_is_the_same_typed_error_on_every_rank():
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", _AGREE, "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2",
                                                  RANK=str(rank), LOCAL_RANK=str(rank)))
             for rank in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    lines = [o[0].splitlines() for o in outs]
    assert lines[0] == lines[1], lines  # every rank: the same errors, then the same value
    assert lines[0] == ["DataError rank 1 (reading the data): img_7.png: truncated PNG",
                        "RankFailedError rank 0 (validation): ZeroDivisionError: division by zero",
                        "value {'dice': 0.5}"]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), per_rank=st.integers(1, 8), world=st.sampled_from([1, 2, 3, 4]),
       seed=st.integers(0, 3), epoch=st.integers(0, 3))
def test_ranks_split_the_global_batches_of_one_process(n, per_rank, world, seed, epoch):
    if n < world:
        with pytest.raises(ConfigError, match="at least one each"):
            GlobalBatchSampler(n, per_rank * world, world, 0, seed)
        return
    one = GlobalBatchSampler(n, per_rank * world, 1, 0, seed)
    ranks = [GlobalBatchSampler(n, per_rank * world, world, r, seed) for r in range(world)]
    for s in (one, *ranks):
        s.set_epoch(epoch)
    shares = [list(s) for s in ranks]
    batches = list(one) if one.global_batch == ranks[0].global_batch else None
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(ranks[0]) >= 1
    seen: list[int] = []
    for b in range(len(shares[0])):
        step = [shares[r][b] for r in range(world)]
        assert len({len(x) for x in step}) == 1  # equal slices: DDP's mean gradient is the global mean
        flat = [i for x in step for i in x]
        if batches is not None:
            assert flat == batches[b]  # N processes see exactly the global batch one process sees
        seen += flat
    assert len(seen) == len(set(seen)) and set(seen) <= set(range(n))  # no sample twice in an epoch
    assert len(seen) > n - ranks[0].global_batch  # at most the incomplete last batch is left out


def test_the_global_batch_must_split_evenly_and_the_fault_hook_rejects_typos(monkeypatch):
    with pytest.raises(ConfigError, match="multiple of the 2 processes"):
        GlobalBatchSampler(20, 7, 2, 0)
    monkeypatch.setenv(ddp.FAULT_ENV, "rnak=1")
    with pytest.raises(ConfigError, match="keys are rank, name, epoch, step, restart"):
        ddp.fault_point(ddp.DistContext(), "student", 1, 0)
    monkeypatch.setenv(ddp.FAULT_ENV, "rank=1,epoch=1")  # rank 0 here: not this process
    ddp.fault_point(ddp.DistContext(), "student", 1, 0)
