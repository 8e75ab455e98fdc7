"""``Segmenter.load(select="fastest")``: every usable candidate timed for real on ONNX Runtime
and OpenVINO, the winner cached per machine, integrity still a refusal (btseg.runtime.select)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from btseg.defaults import default_package
from btseg.errors import ConfigError, IntegrityError
from btseg.runtime import Segmenter
from btseg.runtime import select as sel


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(root))
    return root


def _label(info: dict) -> str:
    return f"{info['backend']} {info['target']}/{info['precision']}"


def _cached(cache: Path) -> list[Path]:
    return sorted((cache / "select").glob("*.json"))


def test_fastest_times_every_candidate_and_loads_the_minimum(cache):
    seg = Segmenter.load(default_package(), select="fastest", threads=1)
    info = seg.info()
    s = info["selection"]
    # the bundled package: 3 IRs on OpenVINO, 3 ONNX on ONNX Runtime, ONNX FP32 on OpenVINO too
    assert len(s["median_ms"]) == 7 and all(v > 0 for v in s["median_ms"].values())
    assert s["winner"] == min(s["median_ms"], key=s["median_ms"].get) == _label(info)
    assert s["cached"] is False and s["cache"].startswith("cached: ")
    assert len(_cached(cache)) == 1
    x = np.random.default_rng(0).integers(0, 256, (200, 300), dtype=np.uint8)
    assert seg.segment(x).mask.shape == (200, 300)


def test_the_cached_choice_is_what_loads_next_time(cache):
    first = Segmenter.load(default_package(), select="fastest", threads=1).info()["selection"]
    (path,) = _cached(cache)
    # the next start loads the recorded winner without timing: prove it by recording another one
    doc = json.loads(path.read_text())
    other = next(k for k in doc["median_ms"] if k != first["winner"])
    doc["winner"] = other
    path.write_text(json.dumps(doc))
    again = Segmenter.load(default_package(), select="fastest", threads=1)
    assert again.info()["selection"]["cached"] is True and _label(again.info()) == other
    # fastest-fresh re-measures and overwrites the record
    fresh = Segmenter.load(default_package(), select="fastest-fresh", threads=1).info()["selection"]
    assert fresh["cached"] is False and json.loads(path.read_text())["winner"] == fresh["winner"]


def test_a_different_machine_setting_is_measured_again(cache):
    ort = Segmenter.load(default_package(), select="fastest", threads=1, backend="onnxruntime").info()
    assert ort["backend"] == "onnxruntime" and set(ort["selection"]["median_ms"]) == {
        "onnxruntime onnx/fp32", "onnxruntime onnx/fp16", "onnxruntime onnx/int8"}
    s = Segmenter.load(default_package(), select="fastest", threads=2, backend="onnxruntime").info()["selection"]
    assert s["cached"] is False and len(_cached(cache)) == 2


def test_an_unreadable_or_stale_cache_record_is_measured_again(cache):
    Segmenter.load(default_package(), select="fastest", threads=1, backend="onnxruntime")
    (path,) = _cached(cache)
    for garbage in (b"", b"{not json", b'{"winner": 3}', b'{"winner": "torch torch/fp64"}'):
        path.write_bytes(garbage)
        s = Segmenter.load(default_package(), select="fastest", threads=1, backend="onnxruntime").info()["selection"]
        assert s["cached"] is False and json.loads(path.read_text())["winner"] == s["winner"], garbage


@pytest.mark.parametrize("kind", ["fifo", "dev-zero-link"])
def test_a_select_record_that_is_a_fifo_or_device_link_is_measured_again_without_hanging(cache, kind):
    import os
    import threading

    Segmenter.load(default_package(), select="fastest", threads=1, backend="onnxruntime")
    (path,) = _cached(cache)
    path.unlink()
    os.mkfifo(path) if kind == "fifo" else os.symlink("/dev/zero", path)
    out: list = []
    t = threading.Thread(target=lambda: out.append(Segmenter.load(default_package(), select="fastest", threads=1,
                                                                  backend="onnxruntime")), daemon=True)
    t.start()
    t.join(60)
    assert out and out[0].info()["selection"]["cached"] is False
    assert path.is_file() and not path.is_symlink()  # replaced by a real record


def test_a_read_only_cache_still_selects(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(blocker))  # cache root is a file: nothing can be written
    s = Segmenter.load(default_package(), select="fastest", threads=1, backend="onnxruntime").info()["selection"]
    assert s["cached"] is False and s["cache"].startswith("not cached: cannot write")


def test_a_tampered_candidate_is_refused_not_skipped(cache, tmp_path):
    pkg = Path(shutil.copytree(default_package(), tmp_path / "pkg"))
    victim = pkg / "openvino-fp16" / "model.bin"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.bin"):
        Segmenter.load(pkg, select="fastest", threads=1)
    assert not _cached(cache)  # nothing was measured, nothing recorded


def test_one_candidate_needs_no_timing_and_bad_modes_are_refused(cache):
    s = Segmenter.load(default_package(), target="onnx", precision="int8", select="fastest", threads=1)
    assert s.info()["selection"] == {"mode": "preference"} and not _cached(cache)
    for backend in ("auto", "torch"):
        with pytest.raises(ConfigError, match="select 'quickest'"):
            Segmenter.load(default_package(), select="quickest", backend=backend)


def test_key_covers_what_the_choice_depends_on():
    pkg = Segmenter.load(default_package(), target="onnx", precision="fp32", threads=1).package
    cands = [("onnxruntime", a) for a in pkg.artifacts() if a.target == "onnx"]
    base = sel.selection_key("w", cands, "cpu", 1, {})
    assert base == sel.selection_key("w", cands, "cpu", 1, {})
    for changed in (sel.selection_key("other weights", cands, "cpu", 1, {}),
                    sel.selection_key("w", cands[:1], "cpu", 1, {}),
                    sel.selection_key("w", cands, "gpu", 1, {}),
                    sel.selection_key("w", cands, "cpu", 2, {}),
                    sel.selection_key("w", cands, "cpu", 1, {"precision_hint": "bf16"})):
        assert changed != base
    assert "flags" in sel.cpu_fingerprint() or Path("/proc/cpuinfo").exists() is False


def test_predict_cli_select_fastest(cache, tmp_path):
    from btseg.cli.predict import main

    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["--select", "fastest", "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "selected " in res.output and "measured" in res.output and len(_cached(cache)) == 1
    res = CliRunner().invoke(main, ["--select", "fastest", "--threads", "1", "--out", str(tmp_path / "o2")])
    assert res.exit_code == 0 and "cached choice" in res.output
    bad = CliRunner().invoke(main, ["--select", "slowest"])
    assert bad.exit_code == 2 and "--select" in bad.output
