"""Atomic writes: an interrupted write leaves the old file (or nothing), never half a file."""

import json

import pytest

from btseg.errors import ArtifactError
from btseg.io import atomic_write, read_json, write_json


def test_interrupted_write_keeps_previous_content(tmp_path):
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write('{"v": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_new_file_not_created_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a" / "new.txt") as f:
            f.write("x")
            raise RuntimeError
    assert not (tmp_path / "a" / "new.txt").exists()


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArtifactError, match="cannot write here"):
        write_json(blocker / "sub" / "x.json", {})


def test_json_handles_numpy_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    write_json(tmp_path / "n.json", {"a": np.float32(0.5), "b": np.int64(3)})
    assert json.loads((tmp_path / "n.json").read_text()) == {"a": 0.5, "b": 3}


def test_written_files_are_readable_by_others(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
