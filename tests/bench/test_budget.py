"""``btseg-bench --budget-ms X PKG...``: the most accurate verified artifact whose p90 fits,
one reason per rejected artifact, exit 0 / 1 / 2.  Real exports, real backends; no timing
assertion: budgets are built from the run's own measurements (0, huge, or a measured p90)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.bench import budget
from btseg.cli.bench import main

SIZE = 64


def _val(lesion: float) -> dict:
    """A model.json ``metrics.val`` block as training writes it (per-class Dice means and counts)."""
    block = lambda m, n: {"dice": {"mean": m, "std": 0.0, "n": n, "n_valid": n}}  # noqa: E731
    return {"overall": block(lesion, 6), "per_class": {"benign": block(lesion, 3), "malignant": block(lesion, 1),
                                                       "normal": block(1.0, 2)}, "n": 6}


def _package(root: Path, widths, lesion: float | None) -> Path:
    from btseg.export import run_export
    from btseg.models import create_model
    from btseg.package import ModelConfig, save_package
    from btseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    metrics = {"selection": "val dice", "val": _val(lesion)} if lesion is not None else {}
    save_package(root, create_model("simplified_unet", widths=list(widths)).eval(),
                 ModelConfig(architecture="simplified_unet", kwargs={"widths": list(widths)}, role="student",
                             preset="test", preprocess=PreprocessSpec(size=(SIZE, SIZE)), metrics=metrics))
    run_export(root, ["onnx"], ["fp32"], verify=False)
    return root


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("budget")
    return {"accurate": _package(base / "accurate", (8, 16, 32), 0.9),
            "rough": _package(base / "rough", (4, 8, 16), 0.7),
            "unscored": _package(base / "unscored", (4, 8), None)}


def _invoke(budget_ms, pkgs, *extra):
    return CliRunner().invoke(main, ["--budget-ms", str(budget_ms), *map(str, pkgs), "--iters", "3",
                                     "--warmup", "1", "--threads", "1", "--backends", "onnxruntime", *extra])


def test_a_huge_budget_picks_the_most_accurate_and_names_why_each_other_is_not(packages):
    r = _invoke(1e6, packages.values(), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["chosen"].startswith(str(packages["accurate"])) and d["chosen_lesion_dice"] == pytest.approx(0.9)
    reasons = {x["artifact"]: x["reason"] for x in d["rejected"]}
    rough = [v for k, v in reasons.items() if k.startswith(str(packages["rough"]))]
    unscored = [v for k, v in reasons.items() if k.startswith(str(packages["unscored"]))]
    assert rough and all("less accurate: lesion Dice 0.7000 < 0.9000" in v for v in rough)
    assert unscored and all("records no validation lesion Dice" in v for v in unscored)
    # every artifact of every package is either chosen or rejected with one line
    assert len(d["rejected"]) + 1 == len(reasons) + 1 and all("\n" not in v for v in reasons.values())
    assert r.stderr.count("rejected ") == len(d["rejected"])


def test_a_zero_budget_rejects_everything_as_too_slow_and_exits_1(packages):
    r = _invoke(0, [packages["accurate"], packages["rough"]])
    assert r.exit_code == 1, r.output
    lines = [x for x in r.stderr.splitlines() if x.startswith("rejected ")]
    assert len(lines) >= 2 and all("too slow: p90" in x and "> budget 0 ms" in x for x in lines)
    assert "no artifact of 2 package(s) fits p90 <= 0 ms" in r.stderr


def test_a_measured_budget_between_two_packages_picks_the_one_that_fits(packages):
    """One real run; budgets from its own p90s: the fastest row's p90 admits at least that row."""
    from btseg.bench import runner

    cfg = runner.BenchConfig(models=[str(packages["accurate"]), str(packages["rough"])], backends=["onnxruntime"],
                             precisions=["fp32"], threads=1, peak=False, memory=False, warmup=1, iters=3)
    rows = runner.run(cfg)["rows"]
    dice = {str(p): budget.lesion_dice(p) for p in packages.values()}
    times = {r["package"]: budget.p90(r) for r in rows}
    fast, slow = sorted(times, key=times.get)
    d = budget.choose(rows, dice, times[fast])
    assert d.chosen["package"] == fast
    if times[slow] > times[fast]:
        assert [why for _, why in d.rejected] == [f"too slow: p90 {times[slow]:.2f} ms > budget {times[fast]:g} ms"]
    d = budget.choose(rows, dice, max(times.values()))
    assert d.chosen["package"] == str(packages["accurate"])


@pytest.mark.parametrize("args, message", [
    (["--budget-ms", "-1", "x"], "--budget-ms -1.0: expected a finite number >= 0"),
    (["--budget-ms", "nan", "x"], "--budget-ms nan"),
    (["--budget-ms", "5"], "needs at least one package"),
    (["some/pkg"], "only with --budget-ms"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_a_missing_package_exits_2(tmp_path):
    r = CliRunner().invoke(main, ["--budget-ms", "5", str(tmp_path / "nope")])
    assert r.exit_code == 2 and str(tmp_path / "nope") in r.stderr


_row = st.fixed_dictionaries({
    "package": st.sampled_from(["a", "b", "c", "d"]), "backend": st.sampled_from(["onnxruntime", "openvino"]),
    "precision": st.sampled_from(["fp32", "int8"]), "status": st.sampled_from(["ok", "ok", "ok", "failed"]),
    "reason": st.just("boom"),
    "latency": st.one_of(st.just({}), st.builds(lambda t: {"e2e": {"p90_ms": t}}, st.floats(0, 100)))})


@settings(max_examples=200, deadline=None)
@given(st.lists(_row, max_size=8), st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0, 1)),
       st.floats(0, 120))
def test_choice_properties(rows, dices, budget_ms):
    d = budget.choose(rows, {k: (v, "") for k, v in dices.items()}, budget_ms)
    fits = [r for r in rows if r["status"] == "ok" and r["package"] in dices and budget.p90(r) is not None
            and budget.p90(r) <= budget_ms]
    assert len(d.rejected) == len(rows) - (d.chosen is not None)
    if not fits:
        assert d.chosen is None
    else:
        assert d.chosen["lesion_dice"] == max(dices[r["package"]] for r in fits)
        assert budget.p90(d.chosen) <= budget_ms


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_choose_refuses_a_bad_budget(bad):
    from btseg.errors import ConfigError

    with pytest.raises(ConfigError, match="--budget-ms"):
        budget.choose([], {}, bad)
