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
