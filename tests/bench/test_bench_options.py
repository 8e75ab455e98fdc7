"""Numeric options that are nan, inf, negative or zero are refused in one line, exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


def _one_error(res) -> str:
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "1e9"])
def test_bench_duration_must_be_finite_and_positive(value):
    from btseg.cli.bench import main

    assert "--duration" in _one_error(CliRunner().invoke(main, [f"--duration={value}"]))


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1", "1.5"])
def test_bench_min_dice_must_be_in_0_1(value):
    from btseg.cli.bench import main

    assert "--min-dice" in _one_error(CliRunner().invoke(main, [f"--min-dice={value}"]))


@pytest.mark.parametrize("opt", ["--spacing=nan", "--spacing=inf", "--spacing=0", "--max-file-mb=nan",
                                 "--max-file-mb=-1"])
def test_predict_float_options_must_be_finite(opt, tmp_path):
    from btseg.cli.predict import main

    assert opt.split("=")[0] in _one_error(CliRunner().invoke(main, [str(tmp_path), opt]))
