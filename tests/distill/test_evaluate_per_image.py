"""evaluate_package(per_image=True): one row per sample, consistent with the summary."""


import pytest
import torch

from btseg.data import open_dataset
from btseg.distill.evaluate import evaluate_package
from btseg.models import create_model


def test_per_image_rows_match_the_summary(phantom_dir, tiny_cfg):
    ds = open_dataset(phantom_dir)
    torch.manual_seed(0)
    model = create_model(tiny_cfg.student_arch, **tiny_cfg.student_kwargs)
    s = evaluate_package(model, ds, distances=False, spec=tiny_cfg.spec, per_image=True)
    rows = s["per_image"]
    assert [r["id"] for r in rows] == list(ds.ids) and [r["label"] for r in rows] == list(ds.labels)
    assert sum(r["dice"] for r in rows) / len(rows) == pytest.approx(s["overall"]["dice"]["mean"])
    assert "per_image" not in evaluate_package(model, ds, distances=False, spec=tiny_cfg.spec)
