"""The demo report's presence columns: lesion sensitivity and normal false-lesion rate as
"k of n", from a model.json test summary with or without the presence block."""

from __future__ import annotations

import numpy as np

from btseg.cli.demo_report import presence_columns
from btseg.cli.demo_training import training_table
from btseg.metrics import MetricAccumulator, presence_summary


def _row(**cols):
    base = {"kd": "dual", "dice": 0.8, "dice_lesion": 0.7, "dice_benign": 0.7, "dice_malignant": 0.6, "iou": 0.6,
            "hd95": 5.0, "params": 1e6, "gmacs": 0.1, "train_seconds": 10}
    return {**base, **cols}


def test_columns_from_the_presence_block():
    test = {"presence": presence_summary([True] * 19 + [False] + [True] + [False] * 7, [True] * 20 + [False] * 8)}
    cols = presence_columns(test)
    assert (cols["lesion_detected"], cols["lesion_n"], cols["normal_flagged"], cols["normal_n"]) == (19, 20, 1, 8)
    _, md = training_table({"student": _row(**cols)})
    assert "lesion sensitivity" in md and "normal false-lesion rate (k of n)" in md
    assert "| 0.950 (19 of 20) | 1 of 8 |" in md


def test_old_package_without_the_block_counts_normal_images_by_dice():
    acc = MetricAccumulator(distances=False)
    empty, dot = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    dot[1, 1] = True
    for pred in (empty, dot, dot, empty):
        acc.add(pred, empty, "normal")
    cols = presence_columns(acc.summary())
    assert (cols["normal_flagged"], cols["normal_n"], cols["lesion_sensitivity"]) == (2, 4, None)
    _, md = training_table({"old": _row(**cols)})
    assert "| - | 2 of 4 |" in md
