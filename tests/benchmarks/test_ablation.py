"""benchmarks/ablation.py: the bootstrap, the summary/report and the resume logic (no training)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from btseg.errors import ConfigError
from script_util import load_script



def _load(name: str):
    return load_script(f"benchmarks/{name}.py")


rep = _load("ablation_report")
abl = _load("ablation")


def test_bootstrap_constant_difference_is_exact():
    a = np.full((3, 40), 0.9)
    delta, lo, hi = rep.paired_bootstrap(a, a - 0.05, n_resamples=2000, seed=1)
    assert delta == pytest.approx(0.05) and lo == pytest.approx(0.05) and hi == pytest.approx(0.05)


def test_bootstrap_matches_the_normal_interval():
    rng = np.random.default_rng(0)
    d = rng.normal(0.02, 0.1, size=(1, 400))  # one seed: the CI of a mean of 400 iid values
    delta, lo, hi = rep.paired_bootstrap(d, np.zeros_like(d), n_resamples=10_000, seed=0)
    se = d.std() / np.sqrt(d.size)
    assert delta == pytest.approx(d.mean())
    assert lo == pytest.approx(delta - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(delta + 1.96 * se, abs=0.25 * se)


def test_bootstrap_pairs_images_and_is_seeded():
    rng = np.random.default_rng(3)
    hard = rng.uniform(0.3, 1.0, size=(1, 50)).repeat(3, axis=0)  # per-image difficulty shared by both
    b = hard + rng.normal(0, 0.005, size=hard.shape)
    a = hard + 0.03 + rng.normal(0, 0.005, size=hard.shape)
    first = rep.paired_bootstrap(a, b, 5000, seed=7)
    assert first == rep.paired_bootstrap(a, b, 5000, seed=7)
    assert 0.025 < first[1] < first[0] < first[2] < 0.035  # paired: the difficulty cancels
    with pytest.raises(ValueError):
        rep.paired_bootstrap(np.zeros(5), np.zeros(6))  # 1-D (one repeat) is allowed; unequal is not


def _run(conf: str, seed: int, lesion: list[float], normal_empty: list[bool]) -> dict:
    role, kd, teachers, arch = abl.CONFIGS[conf]
    rows = [{"id": f"l{i}", "label": "benign" if i % 2 else "malignant", "dice": d, "hd95": 1.0, "pred_empty": False}
            for i, d in enumerate(lesion)]
    rows += [{"id": f"n{i}", "label": "normal", "dice": float(e), "hd95": 0.0, "pred_empty": e}
             for i, e in enumerate(normal_empty)]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return {"role": role, "kd": kd, "teachers": teachers, "arch": arch or "simplified_unet", "variant": "",
            "seed": seed, "dice": mean([r["dice"] for r in rows]), "dice_lesion": mean(lesion),
            "dice_benign": mean(lesion[1::2]), "dice_malignant": mean(lesion[0::2]),
            "normal_empty_rate": mean([float(e) for e in normal_empty]), "hd95": 1.0, "params": 1000,
            "macs": 10**6, "per_image": rows}


def test_summary_and_report(tmp_path):
    runs = []
    for s in range(3):
        runs.append(_run("none", s, [0.80, 0.70, 0.60, 0.90], [True, False]))
        runs.append(_run("dual", s, [0.85, 0.75, 0.65, 0.95], [True, True]))
        runs.append(_run("unet", s, [0.9, 0.9, 0.9, 0.9], [True, True]))
    summary = rep.summarise(runs, n_resamples=1000)
    dual = summary["dual_vs_none"]
    assert dual["delta_dice_lesion"] == dual["ci95_low"] == dual["ci95_high"] == pytest.approx(0.05)
    assert dual["delta_normal_empty_rate"] == pytest.approx(0.5) and dual["n_seeds"] == 3
    assert summary["configs"]["student/none"]["dice_lesion"] == {"mean": 0.75, "std": 0.0, "n": 3}
    assert set(summary["vs_none"]) == {"student/dual", "baseline/unet"}
    doc = {"teacher_params": 15000, "student_params": 1000, "data": {"n": 10, "size": 64, "n_test": 6},
           "bootstrap": {"resamples": 1000}, "command": "python benchmarks/ablation.py", "summary": summary,
           "runs": runs}
    paths = rep.write_report(doc, tmp_path)
    assert json.loads(paths[0].read_text())["summary"]["dual_vs_none"]["n_lesion_images"] == 4
    md = paths[1].read_text()
    assert "| student/dual | +0.0500 [+0.0500, +0.0500] | +0.5000 [+0.0000, +1.0000] |" in md
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_fixes_split_and_teachers_and_the_ratio():
    from btseg.distill.evaluate import count_params
    from btseg.models import create_model

    st = abl.Study()
    jobs = abl.plan(st)
    assert len(jobs) == 2 + len(abl.CONFIGS) * 3
    teachers = [j for j in jobs if j["role"] == "teacher"]
    assert [j["cfg"]["seed"] for j in teachers] == [st.teacher_seed] * 2
    students = [j for j in jobs if j["role"] != "teacher"]
    assert {j["cfg"]["val"] for j in jobs} == {st.val} and {j["cfg"]["test"] for j in jobs} == {st.test}
    assert all(j["needs"] == (j["kd"] != "none") for j in students)
    # the headline pair first for every seed, so a study cut short still has its comparison
    assert [j["name"] for j in students[:6]] == [f"student-{c}-s{s}" for s in range(3) for c in ("none", "dual")]
    assert {(j["kd"], j["teachers"]) for j in students if j["role"] == "student"} == {
        ("none", None), ("response", "routed"), ("feature", "routed"), ("dual", "routed"),
        ("dual", "benign"), ("dual", "malignant"), ("dual", "mean")}
    cfg = teachers[0]["cfg"]
    ratio = (count_params(create_model(cfg["teacher_arch"], **cfg["teacher_kwargs"]))
             / count_params(create_model(cfg["student_arch"], **cfg["student_kwargs"])))
    assert ratio >= 10


def test_resume_reuses_matching_results_and_refuses_others(tmp_path):
    st = abl.Study(n=40, size=64, preset="tiny", teacher_widths=[8, 16, 32], seeds=[0])
    abl.check_study(st, tmp_path)
    job = abl.plan(st)[3]
    assert abl.load_done(job, tmp_path) is None
    (tmp_path / "results").mkdir()
    abl.write_json(tmp_path / "results" / f"{job['name']}.json", {"cfg": job["cfg"], "dice": 0.5})
    assert abl.load_done(job, tmp_path)["dice"] == 0.5
    other = {**job, "cfg": {**job["cfg"], "epochs": job["cfg"]["epochs"] + 1}}
    with pytest.raises(ConfigError, match="another configuration"):
        abl.load_done(other, tmp_path)
    abl.check_study(abl.Study(n=40, size=64, preset="tiny", teacher_widths=[8, 16, 32], seeds=[0, 1]), tmp_path)
    with pytest.raises(ConfigError, match="n"):
        abl.check_study(abl.Study(n=48, size=64, preset="tiny", teacher_widths=[8, 16, 32]), tmp_path)
