"""benchmarks/lobule_echo.py: the phantom with another fat-lobule brightness, the demo's
students trained and scored on it (tiny sizes here), and the default left as it was."""

from __future__ import annotations

import json

import numpy as np
import pytest
from script_util import load_script

from btseg.data import phantom_normals


def _normals(root):
    import cv2

    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted((root / "normal").glob("normal (*).png"))]


def test_the_echo_reaches_the_lobules_and_the_default_comes_back(tmp_path):
    mod = load_script("benchmarks/lobule_echo.py")
    default = phantom_normals.LOBULE_ECHO
    dark = mod.make(tmp_path / "dark", (0.08, 0.3), 8, 64, 0, (0.0, 0.0, 1.0))
    assert phantom_normals.LOBULE_ECHO == default  # restored, whatever the override
    bright = mod.make(tmp_path / "bright", (0.3, 0.5), 8, 64, 0, (0.0, 0.0, 1.0))
    assert phantom_normals.LOBULE_ECHO == default
    assert json.loads((dark / "phantom.json").read_text())["generator"].endswith("-lobule-0.08-0.3")
    a, b = _normals(dark), _normals(bright)
    assert len(a) == len(b) == 8
    differ = [not np.array_equal(x, y) for x, y in zip(a, b)]
    assert any(differ)  # images with a lobule change; brighter lobules only ever brighten pixels on average
    assert sum(float(y.mean()) for y in b) > sum(float(x.mean()) for x in a)
    assert json.loads((bright / "phantom.json").read_text())["generator"].endswith("-lobule-0.3-0.5")
    # a finished set is reused, not rewritten
    stamp = (bright / "phantom.json").stat().st_mtime_ns
    mod.make(tmp_path / "bright", (0.3, 0.5), 8, 64, 0, (0.0, 0.0, 1.0))
    assert (bright / "phantom.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("bad", ["0.5", "a,b", "0.5,0.3", "0,1", "1,9"])
def test_bad_echo_is_refused(bad, tmp_path, capsys):
    mod = load_script("benchmarks/lobule_echo.py")
    with pytest.raises(SystemExit) as e:
        mod.main(["--work", str(tmp_path), "--echo", bad])
    assert e.value.code == 2 and "--echo" in capsys.readouterr().err


def test_tiny_run_end_to_end(tmp_path):
    mod = load_script("benchmarks/lobule_echo.py")
    out = tmp_path / "res"
    rc = mod.main(["--work", str(tmp_path / "w"), "--preset", "tiny", "--n", "24", "--normals", "6", "--size", "64",
                   "--echo", "0.3,0.5", "--out", str(out)])
    assert rc == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["lobule_echo"] == [0.3, 0.5] and doc["command"].startswith("python benchmarks/lobule_echo.py")
    names = [p["package"].rsplit("/", 1)[-1] for p in doc["packages"]]
    assert names == ["student", "student-nokd"]
    for p in doc["packages"]:
        assert sum(h["n"] for h in p["heldout"].values()) == 12
    assert "backscatter 0.3-0.5" in out.with_suffix(".md").read_text()
