"""Compiled-model cache: one folder per verified artifact, each blob bound and hashed.

OpenVINO compiles an IR for the CPU in about a second at every start; the compiled blob
is cached and imported instead.  What runs must be what was verified, so btseg manages
the blob itself rather than trusting OpenVINO's ``CACHE_DIR``:

* the folder is keyed by :func:`binding`, a sha256 over the sha256 and size of **every**
  file of the artifact (IR ``.xml`` and ``.bin``; ONNX and its external data), taken
  from the record that :meth:`~btseg.package.ModelPackage.verify_artifact` has just
  checked (a direct load without a record hashes the files the backend opens:
  :func:`btseg.integrity.opened_files`);
* each blob ``<config>.blob`` has a record ``<config>.json`` with that binding and the
  blob's own sha256 and size, written after the blob;
* before an import, the record and the blob are read as regular files of bounded size
  (:func:`btseg.io.read_regular`: a FIFO, a device or a symlink is refused at once) and
  the very bytes that were hashed are what the backend imports;
* any mismatch (blob changed, record missing or malformed, bound to other files, a
  FIFO/link in its place) removes the entry and **rebuilds it from the verified files**;
  the state says which (``Segmenter.info()["backend"]["model_cache"]``) and a
  :class:`CacheRebuiltWarning` is issued.

The root is ``$BTSEG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/btseg/ov``, else
``~/.cache/btseg/ov``.  ``BTSEG_OV_CACHE=off`` (or ``0``/``no``/``false``) turns caching off.

Example::

    >>> folder, state = model_cache_dir(Path("pkg/openvino-int8/model.xml"), None)  # doctest: +SKIP
    >>> state                                                                       # doctest: +SKIP
    'on: /home/me/.cache/btseg/ov/3f2a...'
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from btseg.errors import ArtifactError, BtsegError

_OFF = ("0", "off", "no", "false")
MAX_BLOB_BYTES = 4 << 30
MAX_RECORD_BYTES = 64 << 10


class CacheRebuiltWarning(UserWarning):
    """A cached compiled model did not match its record or its artifact and was rebuilt."""


def cache_root() -> Path:
    """The user cache folder for compiled models (see the module docstring)."""
    if os.environ.get("BTSEG_CACHE_DIR"):
        return Path(os.environ["BTSEG_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "btseg" / "ov"


def binding(files: Iterable[dict[str, Any]]) -> str:
    """sha256 over the (sha256, size) of every file of an artifact, order-independent."""
    parts = sorted(f"{f['sha256']}:{int(f['size_bytes'])}" for f in files)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def files_on_disk(path: Path) -> list[dict[str, Any]]:
    """``[{file, sha256, size_bytes}]`` of every file a backend opens for ``path`` (a load
    without a manifest record)."""
    from btseg.integrity import hash_file, opened_files

    path = Path(path)
    out = []
    for rel in opened_files(path.parent, path.name):
        sha, size = hash_file(path.parent, rel)
        out.append({"file": rel, "sha256": sha, "size_bytes": size})
    return out


def artifact_key(path: Path, files: list[dict[str, Any]] | None = None) -> str:
    """The cache folder name of an artifact: :func:`binding` of ``files`` (the verified
    record's) or of the files on disk."""
    return binding(files if files is not None else files_on_disk(path))


def model_cache_dir(path: Path, cache: bool | str | os.PathLike | None,
                    files: list[dict[str, Any]] | None = None) -> tuple[Path | None, str]:
    """The cache folder for ``path`` (created) and a one-line state for ``info()``.

    ``cache``: None = the user cache root unless ``BTSEG_OV_CACHE`` says off; a path = that
    root; False = off.  A root that cannot be created is not an error: caching is off and
    the state says why.  ``files``: the verified record's files (see :func:`artifact_key`).
    """
    if cache is False or (cache is None and os.environ.get("BTSEG_OV_CACHE", "").lower() in _OFF):
        return None, "off"
    root = cache_root() if cache is None or cache is True else Path(cache)
    folder = root / artifact_key(path, files)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, f"off: cannot create {folder} ({e.strerror or e})"
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return None, f"off: {folder} is not a writable folder"
    return folder, f"on: {folder}"


def entry_name(**facts: Any) -> str:
    """The blob's name inside its folder: sha256 of what compiling depends on besides the
    artifact (device, compile options, library version)."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def read_entry(folder: Path, name: str) -> tuple[bytes | None, str]:
    """The verified blob ``folder/name.blob``, or (None, why) when absent or refused.

    A refused entry is removed (so that it is rebuilt) and ``why`` starts with
    ``rebuilt from the verified files:``; an absent one gives ``"miss"``.
    """
    from btseg.io import read_regular

    blob, rec_path = folder / f"{name}.blob", folder / f"{name}.json"
    if not os.path.lexists(blob) and not os.path.lexists(rec_path):
        return None, "miss"
    try:
        rec = json.loads(read_regular(rec_path, MAX_RECORD_BYTES, "cache record"))
        if not (isinstance(rec, dict) and isinstance(rec.get("sha256"), str)
                and isinstance(rec.get("size_bytes"), int) and 0 <= rec["size_bytes"] <= MAX_BLOB_BYTES):
            raise ArtifactError(f"{rec_path}: not a btseg cache record")
        if rec.get("artifact") != folder.name:
            raise ArtifactError(f"{rec_path}: bound to artifact {str(rec.get('artifact'))[:12]}..., "
                                f"not {folder.name[:12]}...")
        data = read_regular(blob, rec["size_bytes"], "cached blob")
        sha = hashlib.sha256(data).hexdigest()
        if len(data) != rec["size_bytes"] or sha != rec["sha256"]:
            raise ArtifactError(f"{blob}: sha256 {sha[:12]}... ({len(data)} bytes) does not match its record "
                                f"{rec['sha256'][:12]}... ({rec['size_bytes']} bytes)")
    except (BtsegError, ValueError, RecursionError) as e:  # ValueError covers JSON and UTF-8 errors
        return None, "rebuilt from the verified files: " + _drop(folder, name, str(e))
    return data, "hit"


def write_entry(folder: Path, name: str, data: bytes, facts: dict[str, Any]) -> str:
    """Store a blob and then its record (atomically each); a one-line state.  A cache that
    cannot be written is not an error: the model runs, compiled, uncached."""
    from btseg.io import atomic_write, write_json

    rec = {"artifact": folder.name, "blob": f"{name}.blob", "sha256": hashlib.sha256(data).hexdigest(),
           "size_bytes": len(data), **facts}
    try:
        with atomic_write(folder / f"{name}.blob", "wb") as f:
            f.write(data)
        write_json(folder / f"{name}.json", rec, strict=True)
    except (OSError, BtsegError) as e:
        return f"not cached: {getattr(e, 'strerror', None) or e}"
    return "written"


def _drop(folder: Path, name: str, why: str) -> str:
    for p in (folder / f"{name}.json", folder / f"{name}.blob"):
        try:
            if os.path.lexists(p):
                p.unlink()
        except OSError as e:
            why += f" (and {p.name} cannot be removed: {e.strerror or e})"
    warnings.warn(f"compiled-model cache entry refused and rebuilt: {why}", CacheRebuiltWarning, stacklevel=3)
    return why


def read_verified(path: Path, files: list[dict[str, Any]] | None, limit: int = MAX_BLOB_BYTES) -> bytes:
    """The bytes of an artifact's file for a backend that deserializes from memory (a
    TensorRT engine): a regular file, bounded, and, given the verified record's ``files``,
    the sha256 recorded for it, so the bytes handed over are the bytes that were verified
    (IntegrityError otherwise)."""
    from btseg.errors import IntegrityError
    from btseg.io import read_regular

    entry = next((f for f in files or [] if Path(path).as_posix().endswith("/" + f["file"])
                  or Path(path).as_posix() == f["file"]), None)
    data = read_regular(path, int(entry["size_bytes"]) if entry else limit, "artifact file")
    if entry is not None and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise IntegrityError(f"{path}: sha256 of the bytes read differs from the verified "
                             f"{entry['sha256'][:12]}...; the file changed after verification")
    return data
