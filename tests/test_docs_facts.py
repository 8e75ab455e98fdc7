"""Cheap facts the docs state are computed here, not copied: model sizes of the paper preset.

A measured number (latency, Dice) comes from benchmarks/results/ (tests/test_docs_numbers.py);
a number the code decides on its own (parameters, MACs) is recomputed in this test and must
appear in README.md exactly as formatted here.
"""

from __future__ import annotations

from pathlib import Path

from btseg.bench.flops import count_macs, count_params
from btseg.distill.config import get_preset
from btseg.models import create_model

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_paper_preset_sizes_in_the_readme_are_the_models():
    cfg = get_preset("paper")
    for arch, kwargs in ((cfg.teacher_arch, cfg.teacher_kwargs), (cfg.student_arch, cfg.student_kwargs)):
        model = create_model(arch, **kwargs)
        text = (f"{count_params(model) / 1e6:.2f} M parameters, "
                f"{count_macs(model, (cfg.image_size, cfg.image_size)) / 1e9:.2f} GMACs")
        assert text in " ".join(README.split()), f"README should say {text!r} for the paper {arch}"


def test_the_default_kd_weights_are_what_the_cv_ablation_chose_most_often():
    """The issue's rule: KD weights are chosen on validation inside each fold, and the defaults
    follow what validation picked (benchmarks/results/ablation-cv.json, dual KD, per fold)."""
    import collections
    import json

    from btseg.distill.config import TrainConfig

    doc = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "ablation-cv.json")
                     .read_text())
    picks = collections.Counter((p["alpha"], p["beta"], p["temperature"]) for p in doc["summary"]["search"]["dual"])
    (best, votes), *rest = picks.most_common()
    assert not rest or rest[0][1] < votes, f"no majority among the folds' picks {dict(picks)}"
    cfg = TrainConfig()
    assert (cfg.alpha, cfg.beta, cfg.temperature) == best, dict(picks)
    for name in ("tiny", "demo", "paper"):
        p = get_preset(name)
        assert (p.alpha, p.beta, p.temperature) == best, name
