"""The bench counts the runtime's presence decision per image: lesion sensitivity and the
normal false-lesion rate as "k of n" in the table, CSV and Markdown."""

from __future__ import annotations

import json

from btseg.bench import accuracy, report
from btseg.runtime import Segmenter


def test_counts_follow_the_runtime_decision(run_dir, phantom):
    pkg = run_dir / "student"
    doc = json.loads((pkg / "model.json").read_text())
    doc["postprocess"]["presence"] = {"score": "peak", "min_area_frac": 0.0, "threshold": 0.5}
    (pkg / "model.json").write_text(json.dumps(doc))
    (pkg / "manifest.json").unlink()  # the weights alone: the torch row
    test = accuracy.load_test_set(phantom, part="all")
    assert "normal" in test.labels
    seg = Segmenter.load(pkg, backend="torch", threads=1)
    summary = accuracy.evaluate(seg, test, distances=False)
    present = [seg.segment(im).lesion_present for im in test.images]
    has = [bool(m.any()) for m in test.masks]
    pres = summary["presence"]
    assert pres["lesion"]["n"] == sum(has) and pres["normal"]["n"] == len(has) - sum(has) > 0
    assert pres["lesion"]["detected"] == sum(p for p, g in zip(present, has) if g)
    assert pres["normal"]["flagged"] == sum(p for p, g in zip(present, has) if not g)
    head = accuracy.headline(summary)
    assert head["normal_false_lesion_k"] == pres["normal"]["flagged"]
    assert head["lesion_n"] == pres["lesion"]["n"]


def _result(k: int | None, n: int | None) -> dict:
    row = {"status": "ok", "model": "student", "backend": "onnxruntime", "target": "onnx", "precision": "int8",
           "dice": 0.8, "lesion_sensitivity": 0.95, "lesion_detected_k": 19, "lesion_n": 20,
           "normal_false_lesion": None if not n else k / n, "normal_false_lesion_k": k, "normal_false_lesion_n": n}
    return {"rows": [row], "config": {"device": "cpu", "threads": 1, "batch": 1, "warmup": 1, "iters": 1},
            "system": {}, "flops_convention": "MACs", "created": "now"}


def test_table_shows_k_of_n_not_a_rate():
    head, cells = report.display_rows(_result(1, 8))
    col = head.index("normal false-lesion rate (k of n)")
    assert cells[0][col] == "1 of 8"
    assert cells[0][head.index("lesion sensitivity")] == "0.950 (19 of 20)"
    assert report.display_rows(_result(0, 0))[1][0][col] == "-"  # no normal test image: nothing to count
    assert report.flatten(_result(1, 8)["rows"][0])["normal_false_lesion_k"] == 1
