"""The integrity chain: confined, bounded reading and hashing of package files.

The chain::

    model.json.weights_sha256  ==  sha256(model.safetensors)
    artifact.weights_sha256    ==  model.json.weights_sha256      (bound to these weights)
    artifact.files[*].sha256   ==  sha256(each file it consists of: .onnx + external data,
                                   IR .xml AND .bin, engine)

Every file is opened through :func:`open_confined`: the path must be relative and inside
the package, every component is opened with ``O_NOFOLLOW`` relative to its parent (so no
symlink, at any depth, can lead out of the package), and the result must be a regular
file (a FIFO, a device such as ``/dev/zero`` or a directory such as ``/`` is refused
before a byte is read).  Hashing streams the file and never reads past the recorded size.

Example::

    >>> sha, size = hash_file(Path("pkg"), "openvino-int8/model.bin")       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import stat
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

from btseg.errors import IntegrityError, SchemaError
from btseg.io import read_fd
from btseg.schema import need_relpath

CHUNK = 1 << 20
MAX_JSON_BYTES = 16 << 20


@contextlib.contextmanager
def open_confined(root: Path, rel: str, what: str = "file") -> Iterator[int]:
    """Yield a read-only fd of the regular file ``root/rel``; IntegrityError otherwise."""
    need_relpath(rel, str(root), what)
    parts = PurePosixPath(rel).parts
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY))
            for part in parts[:-1]:
                fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fds[-1]))
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=fds[-1])
        except OSError as e:
            raise IntegrityError(f"{root / rel}: {_why(e)}") from e
        fds.append(fd)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
            raise IntegrityError(f"{root / rel}: {what} is {kind}; expected a regular file inside the package")
        yield fd
    finally:
        for f in reversed(fds):
            os.close(f)


def _why(e: OSError) -> str:
    if e.errno == errno.ENOENT:
        return "missing"
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        return "is (or lies under) a symlink or not a directory; package files must be regular files inside it"
    return e.strerror or str(e)


def hash_fd(fd: int, limit: int | None = None) -> tuple[str, int]:
    """Stream sha256 of an open file, reading at most ``limit + 1`` bytes (None: to EOF)."""
    h, n = hashlib.sha256(), 0
    while limit is None or n <= limit:
        block = os.read(fd, CHUNK if limit is None else min(CHUNK, limit + 1 - n))
        if not block:
            break
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def hash_file(root: Path, rel: str) -> tuple[str, int]:
    """(sha256, size) of a confined regular file (used when recording)."""
    with open_confined(root, rel) as fd:
        return hash_fd(fd)


def check_file(root: Path, rel: str, sha256: str, size: int, what: str = "file") -> None:
    """Refuse unless ``root/rel`` is a confined regular file of ``size`` bytes and ``sha256``."""
    with open_confined(root, rel, what) as fd:
        actual = os.fstat(fd).st_size
        if actual != size:
            raise IntegrityError(f"{root / rel}: {actual} bytes, the package records {size} (so its sha256 "
                                 "cannot match); the file was changed or truncated, re-export it")
        digest, n = hash_fd(fd, size)
    if n != size or digest != sha256:
        raise IntegrityError(f"{root / rel}: sha256 {digest[:12]}... does not match the recorded "
                             f"{sha256[:12]}...; the file was changed or corrupted, re-export it")


def read_bytes(root: Path, rel: str, limit: int) -> bytes:
    """The content of a confined regular file of at most ``limit`` bytes."""
    with open_confined(root, rel) as fd:
        return read_fd(fd, limit, root / rel, IntegrityError)


def read_json(root: Path, rel: str) -> Any:
    """A package JSON document (bounded, confined); SchemaError naming the file if invalid."""
    data = read_bytes(root, rel, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SchemaError(f"{root / rel}: not valid JSON ({str(e)[:120]})") from e


def record_files(root: Path, rels: list[str]) -> list[dict[str, Any]]:
    """``[{file, sha256, size_bytes}]`` for the files an artifact consists of (export side)."""
    out = []
    for rel in sorted(rels):
        sha, size = hash_file(root, rel)
        out.append({"file": rel, "sha256": sha, "size_bytes": size})
    return out


def check_artifact_files(root: Path, record: Any, weights_sha256: str) -> None:
    """Every file of one artifact record, its binding to the package's weights, and that the
    record lists every file a backend will open (:func:`opened_files`)."""
    label = f"{record.target}/{record.precision}"
    if record.weights_sha256 != weights_sha256:
        raise IntegrityError(f"{root}: {label} was exported from other weights (sha256 "
                             f"{record.weights_sha256[:12]}..., model.json has {weights_sha256[:12]}...); "
                             "re-export it from this package")
    for f in record.files:
        check_file(root, f["file"], f["sha256"], f["size_bytes"], f"{label} file")
    check_listed(root, record.file, [f["file"] for f in record.files], label)


def opened_files(root: Path, main: str, size_limit: int = 1 << 31) -> list[str]:
    """Every package file a backend opens to run ``main`` (relative paths): an IR's ``.xml``
    and its ``.bin``; an ONNX model and each external-data file its tensors name (found by
    walking the protobuf, tensors never loaded: :mod:`btseg.onnx_refs`)."""
    rel = PurePosixPath(main)
    if rel.suffix == ".xml":
        return [main, str(rel.with_suffix(".bin"))]
    if rel.suffix != ".onnx":
        return [main]
    from btseg.onnx_refs import external_locations

    out = [main]
    for loc in external_locations(read_bytes(root, main, size_limit), f"{root / main}"):
        joined = posixpath.normpath(posixpath.join(str(rel.parent), loc))
        if PurePosixPath(loc).is_absolute() or "\\" in loc or joined.startswith(".."):
            raise IntegrityError(f"{root / main}: external data location {loc!r} leaves the package; "
                                 "expected a file beside the model")
        out.append(joined)
    return out


def check_listed(root: Path, main: str, listed: list[str], label: str = "artifact") -> None:
    """IntegrityError unless every file a backend opens for ``main`` is in ``listed``: a file
    outside the record would run unverified."""
    missing = [f for f in opened_files(root, main) if f not in set(listed)]
    if missing:
        raise IntegrityError(f"{root / missing[0]}: {label} opens this file but its record does not list it "
                             f"(files: {', '.join(listed)}); an unlisted file runs unverified: re-export it")
