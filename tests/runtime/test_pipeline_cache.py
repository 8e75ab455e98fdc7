"""btseg.runtime.pipeline (bounded, ordered, per-item errors), predict --streams, and the
OpenVINO model cache keyed by the artifact's sha256."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from btseg.errors import ConfigError, DataError
from btseg.runtime import cache
from btseg.runtime.pipeline import ordered_map


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.003), st.booleans()), max_size=25), st.integers(1, 4), st.integers(1, 6))
def test_ordered_map_keeps_order_errors_in_place_and_bounds_read_ahead(items, workers, depth):
    pulled, consumed, worst = [0], [0], [0]

    def source():
        for i, item in enumerate(items):
            pulled[0] += 1
            worst[0] = max(worst[0], pulled[0] - consumed[0])
            yield i, item

    def work(arg):
        i, (sleep, fail) = arg
        time.sleep(sleep)
        if fail:
            raise DataError(f"item {i} is bad")
        return i * 10

    out = []
    for (i, _), res in ordered_map(work, source(), workers, depth):
        consumed[0] += 1
        out.append((i, res))
    assert [i for i, _ in out] == list(range(len(items)))
    for (i, res), (_, fail) in zip(out, items):
        assert (isinstance(res, DataError) and str(i) in str(res)) if fail else res == i * 10
    assert worst[0] <= max(depth, 1) + 1


def test_ordered_map_runs_work_concurrently_and_rejects_bad_sizes():
    seen, lock = set(), threading.Lock()

    def work(i):
        with lock:
            seen.add(threading.current_thread().name)
        time.sleep(0.01)
        return i

    assert [r for _, r in ordered_map(work, range(8), workers=3)] == list(range(8))
    assert len(seen) > 1
    for bad in ({"workers": 0}, {"workers": 2, "depth": 0}):
        with pytest.raises(ConfigError):
            list(ordered_map(work, range(2), **bad))


def test_predict_streams_writes_every_good_input_and_names_the_bad_one(tmp_path):
    from btseg import defaults
    from btseg.cli.predict import main

    images = sorted(defaults.sample_images())[:4]
    src = tmp_path / "in"
    src.mkdir()
    for p in images:
        (src / p.name.replace(" ", "_")).write_bytes(p.read_bytes())
    (src / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, [str(src), "--out", str(out), "--streams", "2", "--threads", "2", "--no-overlay"],
                             catch_exceptions=False)
    assert res.exit_code == 1, res.output
    assert "broken.png" in res.output and "4 of 5 inputs segmented, 1 failed" in res.output
    assert len(list(out.glob("*_mask.png"))) == 4 and not (out / "broken_mask.png").exists()


def _ir(tmp_path: Path) -> Path:
    """A tiny real IR written by OpenVINO (one conv)."""
    import openvino as ov
    import openvino.opset13 as ops

    x = ops.parameter([1, 1, 16, 16], np.float32, name="image")
    w = ops.constant(np.random.default_rng(0).standard_normal((1, 1, 3, 3)).astype(np.float32))
    model = ov.Model([ops.convolution(x, w, [1, 1], [1, 1], [1, 1], [1, 1])], [x], "tiny")
    xml = tmp_path / "ir" / "model.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return xml


def test_model_cache_is_a_folder_per_artifact_sha_and_a_changed_artifact_gets_a_new_one(tmp_path):
    from btseg.runtime.openvino_backend import OpenVINOBackend

    xml = _ir(tmp_path)
    root = tmp_path / "cache"
    x = np.ones((1, 1, 16, 16), np.float32)
    first = OpenVINOBackend.load(xml, threads=1, cache=root)
    key = cache.artifact_key(xml)
    assert first.info()["model_cache"] == f"on: {root / key} (written)"
    assert any((root / key).glob("*.blob"))  # the compiled blob and its record are there
    again = OpenVINOBackend.load(xml, threads=1, cache=root)  # from the cache, same numbers
    np.testing.assert_array_equal(again.infer(x), first.infer(x))
    # change the weights (same .xml): a new key, a new folder; the old blob is never used
    weights = xml.with_suffix(".bin")
    w = np.frombuffer(weights.read_bytes(), np.float32).copy() * 2
    weights.write_bytes(w.tobytes())
    changed = OpenVINOBackend.load(xml, threads=1, cache=root)
    assert cache.artifact_key(xml) != key and f"{cache.artifact_key(xml)} (written)" in changed.info()["model_cache"]
    np.testing.assert_allclose(changed.infer(x), 2 * first.infer(x), rtol=1e-5)
    assert sorted(p.name for p in root.iterdir()) == sorted([key, cache.artifact_key(xml)])


def test_model_cache_root_env_off_and_unusable_root(tmp_path, monkeypatch):
    xml = _ir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BTSEG_CACHE_DIR", raising=False)
    assert cache.cache_root() == tmp_path / "xdg" / "btseg" / "ov"
    monkeypatch.setenv("BTSEG_CACHE_DIR", str(tmp_path / "mine"))
    folder, state = cache.model_cache_dir(xml, None)
    assert folder == tmp_path / "mine" / cache.artifact_key(xml) and folder.is_dir() and state.startswith("on")
    monkeypatch.setenv("BTSEG_OV_CACHE", "off")
    assert cache.model_cache_dir(xml, None) == (None, "off")
    assert cache.model_cache_dir(xml, False) == (None, "off")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    folder, state = cache.model_cache_dir(xml, blocker)  # a file where the root should be
    assert folder is None and state.startswith("off: cannot create")


def test_openvino_streams_option_is_checked(tmp_path):
    from btseg.runtime.openvino_backend import OpenVINOBackend

    with pytest.raises(ConfigError, match="streams"):
        OpenVINOBackend.load(_ir(tmp_path), streams=0, cache=False)
