"""The training loop: loss goes down, checkpoints round-trip, resume continues."""

from __future__ import annotations

import json

import numpy as np
import torch

from btseg.data import open_dataset
from btseg.preprocess import PreprocessSpec
from btseg.distill.evaluate import count_params, evaluate_package
from btseg.distill.losses import DistillObjective, SupervisedObjective
from btseg.distill.torchdata import SegDataset
from btseg.distill.train import fit
from btseg.models import create_model
from btseg.package import ModelConfig, load_package, save_package


def _data(phantom_dir, cfg):
    ds = open_dataset(phantom_dir, cache=True)
    return SegDataset(ds, cfg.spec, augment=True, seed=cfg.seed), ds[:6]


def _student_objective(cfg):
    torch.manual_seed(1)
    teachers = [create_model(cfg.teacher_arch, **cfg.teacher_kwargs) for _ in range(2)]
    torch.manual_seed(0)
    return DistillObjective(create_model(cfg.student_arch, **cfg.student_kwargs), teachers, "dual", "routed",
                            cfg.alpha, cfg.beta, cfg.temperature)


def test_seg_dataset_preprocesses_augments_and_keeps_masks_binary(phantom_dir, tiny_cfg):
    ds, _ = _data(phantom_dir, tiny_cfg)
    x, y, label, i = ds[0]
    assert x.shape == (1, 64, 64) and x.dtype == torch.float32 and y.shape == (1, 64, 64)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0} and label in (0, 1, 2) and i == 0
    again = ds[0]
    assert torch.equal(x, again[0])  # same (seed, epoch, index): same draw
    ds.set_epoch(5)
    assert any(not torch.equal(ds[k][0], SegDataset(ds.samples, ds.spec)[k][0]) for k in range(4))
    twice = SegDataset(ds.samples, ds.spec, augment=True, repeat=2)
    n = len(ds.samples)
    assert len(twice) == 2 * n and torch.equal(twice[n][1].sum(), twice[0][1].sum())  # same mask, new draw


def test_tiny_distillation_lowers_the_loss(phantom_dir, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(epochs=5, max_steps_per_epoch=3, patience=10)
    train, val = _data(phantom_dir, cfg)
    res = fit(_student_objective(cfg), train, val, cfg, tmp_path)
    losses = [r["train_loss"] for r in res.history]
    assert len(losses) == 5 and losses[-1] < losses[0], losses
    assert {"train_seg", "train_kd_resp", "train_kd_feat", "val_dice"} <= set(res.history[0])
    rows = (tmp_path / "log.jsonl").read_text().splitlines()
    assert len(rows) == 5 and json.loads(rows[-1])["epoch"] == 5
    assert (tmp_path / "log.csv").read_text().count("\n") == 6


def test_resume_continues_from_the_saved_epoch(phantom_dir, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(epochs=3, max_steps_per_epoch=2, patience=10)
    train, val = _data(phantom_dir, cfg)
    first = fit(_student_objective(cfg), train, val, cfg, tmp_path / "a", stop_after=2)
    assert first.epochs_run == 2
    state = json.loads((tmp_path / "a" / "state.json").read_text())
    assert state["epoch"] == 2 and state["step"] == 4
    resumed = fit(_student_objective(cfg), train, val, cfg, tmp_path / "a", resume=True)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 3
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    straight = fit(_student_objective(cfg), train, val, cfg, tmp_path / "b")
    # epoch-determined seeds + saved AdamW moments: resuming equals not stopping
    np.testing.assert_allclose(resumed.history[-1]["train_loss"], straight.history[-1]["train_loss"], rtol=1e-4)
    done = fit(_student_objective(cfg), train, val, cfg, tmp_path / "a", resume=True)
    assert done.epochs_run == 3 and len(done.history) == 3  # a finished run is not trained again


def test_package_round_trip_rebuilds_an_identical_model(phantom_dir, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(epochs=1, max_steps_per_epoch=2)
    train, val = _data(phantom_dir, cfg)
    model = create_model(cfg.student_arch, **cfg.student_kwargs)
    fit(SupervisedObjective(model), train, val, cfg, tmp_path / "train")
    save_package(tmp_path / "pkg", model, ModelConfig(cfg.student_arch, cfg.student_kwargs, preprocess=cfg.spec))
    again = load_package(tmp_path / "pkg").build_model()
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), again(x))
    assert count_params(again) == count_params(model) > 0
    a = evaluate_package(tmp_path / "pkg", val)
    b = evaluate_package(model, val, spec=PreprocessSpec(size=(64, 64)))
    assert a["overall"]["dice"]["mean"] == b["overall"]["dice"]["mean"]
    assert {"dice", "iou", "hd95"} <= set(a["overall"]) and a["n"] == 6 and a["per_class"]


def test_early_stopping_on_the_validation_plateau(phantom_dir, tiny_cfg, tmp_path):
    # min_delta 1.0: after the first epoch no gain can count, so training stops `patience`
    # epochs later, well before the epochs bound; the best (first) epoch's weights are kept
    cfg = tiny_cfg.replace(epochs=20, max_steps_per_epoch=1, patience=2, min_delta=1.0)
    train, val = _data(phantom_dir, cfg)
    res = fit(SupervisedObjective(create_model(cfg.student_arch, **cfg.student_kwargs)), train, val, cfg, tmp_path)
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1
    plain = fit(SupervisedObjective(create_model(cfg.student_arch, **cfg.student_kwargs)), train, val,
                cfg.replace(epochs=4, patience=10, min_delta=0.0), tmp_path / "b")
    assert not plain.stopped_early and plain.epochs_run == 4
