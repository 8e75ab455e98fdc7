"""Atomic file writing.

Every checkpoint, artifact, manifest and report goes through :func:`atomic_write` so that
an interrupted run never leaves a file that looks complete: data is written to a
temporary file in the same directory, flushed, fsync'ed and renamed over the target.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
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


def json_text(obj: Any, indent: int | None = 2, strict: bool = False) -> str:
    """``obj`` as JSON text; ``strict``: NaN / Infinity refused (ValueError naming the value),
    since they are not JSON and a reader that follows the standard rejects the file."""
    return json.dumps(obj, indent=indent, sort_keys=False, default=_json_default, allow_nan=not strict)


def write_json(target: str | os.PathLike, obj: Any, strict: bool = False) -> None:
    """Atomically write ``obj`` as indented JSON (``strict``: see :func:`json_text`; an
    ArtifactError naming ``target`` then, and nothing written)."""
    try:
        text = json_text(obj, strict=strict)
    except ValueError as e:
        raise ArtifactError(f"{target}: not written, a value is not finite ({e}); JSON has no NaN/Infinity") from e
    with atomic_write(target) as f:
        f.write(text + "\n")


MAX_JSON_BYTES = 16 << 20


def read_json(path: str | os.PathLike, limit: int = MAX_JSON_BYTES) -> Any:
    """Read a JSON file (a regular file, links followed, at most ``limit`` bytes), raising
    :class:`ArtifactError` naming the file on failure."""
    path = Path(path)
    try:
        data = read_regular(path, limit, "JSON file", follow=True)
    except ArtifactError as e:
        raise ArtifactError(str(e).replace(": JSON file missing", ": file not found")) from e
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path}: not valid JSON ({e})") from e


def open_regular(path: str | os.PathLike, what: str = "file", follow: bool = False) -> int:
    """A read-only fd of ``path`` if it is a regular file (and, unless ``follow``, itself not
    a symlink); ArtifactError otherwise.  Opened non-blocking, so a FIFO (or a link to
    ``/dev/zero``, a device, a directory) is refused at once, before a byte is read, instead
    of hanging or flooding memory."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0) | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        why = ("is a symlink; expected a regular file" if e.errno == errno.ELOOP else
               "missing" if e.errno == errno.ENOENT else e.strerror or str(e))
        raise ArtifactError(f"{path}: {what} {why}") from e
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise ArtifactError(f"{path}: {what} is {kind}; expected a regular file")
    return fd


def read_fd(fd: int, limit: int, name: str | os.PathLike = "file", error: type[ArtifactError] = ArtifactError) -> bytes:
    """All bytes of an open regular file, refusing one of more than ``limit`` bytes
    (ArtifactError naming ``name``); never reads more than ``limit + 1`` bytes."""
    if (size := os.fstat(fd).st_size) > limit:
        raise error(f"{name}: {size} bytes, more than the {limit} expected")
    chunks, n = [], 0
    while n <= limit and (block := os.read(fd, min(1 << 20, limit + 1 - n))):
        chunks.append(block)
        n += len(block)
    if n > limit:  # grew while being read
        raise error(f"{name}: more than the {limit} bytes expected")
    return b"".join(chunks)


def read_regular(path: str | os.PathLike, limit: int, what: str = "file", follow: bool = False) -> bytes:
    """The bytes of ``path``: a regular file (:func:`open_regular`) of at most ``limit``
    bytes (:func:`read_fd`).  The one reader of caches and records (compiled-model blobs,
    select choices, timing caches, output records); package files use the confined
    variant, :func:`btseg.integrity.read_bytes`."""
    fd = open_regular(path, what, follow)
    try:
        return read_fd(fd, limit, path)
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read ({e.strerror or e})") from e
    finally:
        os.close(fd)


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
