"""Atomic file writing.

Every checkpoint, artifact, manifest and report goes through :func:`atomic_write` so that
an interrupted run never leaves a file that looks complete: data is written to a
temporary file in the same directory, flushed, fsync'ed and renamed over the target.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from btseg.errors import ArtifactError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success.

    Use this for writers that insist on a file name (``torch.onnx.export``,
    ``openvino.save_model``).  On any exception the temporary file is removed.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    except OSError as e:
        raise ArtifactError(f"{target.parent}: cannot write here ({e.strerror})") from e
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600; a cart service running as another user must read artifacts
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_write(target: str | os.PathLike, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing and atomically move it onto ``target`` on close."""
    with atomic_path(target) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_write(target) as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=_json_default)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file, raising :class:`ArtifactError` naming the file on failure."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ArtifactError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from e


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_png(target: str | os.PathLike, image: Any) -> None:
    """Encode ``image`` (uint8/uint16 HxW or HxWx3 BGR) as PNG and write it atomically."""
    import cv2

    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ArtifactError(f"{target}: PNG encoding failed")
    with atomic_write(target, "wb") as f:
        f.write(buf.tobytes())


def _umask() -> int:
    # os.umask can only be read by setting it; read it from /proc where possible so that
    # no other thread ever sees a zero umask
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _json_default(o: Any) -> Any:
    # numpy scalars and Paths turn up in metrics and configs
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
