"""Training checkpoints: one atomic file is the commit point of an epoch.

Files in a model's ``train/`` directory (rank 0 writes them, atomically)::

    best-eNNNN.safetensors  the model at its best validation Dice (epoch NNNN)
    state.safetensors       the objective's trainable state, the AdamW moments and, in its
                            metadata, the loop's scalars and history: THE checkpoint
    state.json              a readable copy of the scalars (never read back)
    log.jsonl, log.csv      one row per epoch

An epoch is saved in this order: the new best weights under a new name, then
``state.safetensors`` naming them (the commit), then the copies and logs, then older best
files are removed.  A process killed at any point leaves the previous or the new
checkpoint, each with the best weights it names: never a state from one epoch with the
best weights or log of another.  No pickle anywhere.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from btseg.errors import ArtifactError
from btseg.io import atomic_path, atomic_write, write_json

STATE = "state.safetensors"


def exists(workdir: Path) -> bool:
    """Whether ``workdir`` holds a committed checkpoint."""
    return (Path(workdir) / STATE).exists()


def save(workdir: Path, objective: nn.Module, opt: torch.optim.Optimizer, model: nn.Module,
         scalars: dict[str, Any], history: list[dict[str, Any]], improved: bool) -> dict[str, Any]:
    """Commit one epoch (see the module docstring); returns ``scalars`` with ``best_file``."""
    from safetensors.torch import save_file

    workdir = Path(workdir)
    if improved:
        best = f"best-e{int(scalars['epoch']):04d}.safetensors"
        with atomic_path(workdir / best) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
        scalars = {**scalars, "best_file": best}
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in objective.state_dict().items()}
    osd = opt.state_dict()
    for idx, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    scalars = {**scalars, "param_groups": osd["param_groups"]}
    meta = {"scalars": json.dumps(scalars), "history": json.dumps(history)}
    with atomic_path(workdir / STATE) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    write_json(workdir / "state.json", scalars)
    _write_logs(workdir, history)
    for old in workdir.glob("best-e*.safetensors"):
        if old.name != scalars.get("best_file"):
            old.unlink(missing_ok=True)
    return scalars


def load(workdir: Path, objective: nn.Module, opt: torch.optim.Optimizer) -> tuple[dict[str, Any], list[dict]]:
    """Restore ``objective`` and ``opt``; returns the saved scalars and history."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(workdir) / STATE
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        scalars, history = json.loads(meta["scalars"]), json.loads(meta.get("history", "[]"))
    except (OSError, KeyError, ValueError) as e:  # safetensors raises its own SafetensorError(ValueError)
        raise ArtifactError(f"{path}: not a btseg training checkpoint ({e})") from e
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        objective.load_state_dict(model_sd, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"{path}: checkpoint does not match this model ({str(e).splitlines()[0]})") from e
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    return scalars, history


def load_best(workdir: Path, model: nn.Module, best_file: str) -> None:
    """Load the best weights the checkpoint names into ``model``."""
    from safetensors.torch import load_file

    path = Path(workdir) / best_file
    if not path.exists():
        raise ArtifactError(f"{path}: best weights named by {Path(workdir) / STATE} are missing")
    model.load_state_dict(load_file(str(path)))


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
