"""Where compiled models are cached, one folder per artifact content hash.

OpenVINO compiles an IR for the CPU in about a second at every start; with ``CACHE_DIR`` it
writes the compiled blob once and imports it afterwards.  btseg keys that folder by the
sha256 of the artifact's files (the ``.xml`` and its ``.bin``), so a re-exported or changed
artifact never meets a blob compiled from another one: it gets a new folder.

The root is ``$BTSEG_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/btseg/ov``, else
``~/.cache/btseg/ov``.  ``BTSEG_OV_CACHE=off`` (or ``0``/``no``/``false``) turns caching off.

Example::

    >>> folder, state = model_cache_dir(Path("pkg/openvino-int8/model.xml"), None)  # doctest: +SKIP
    >>> state                                                                       # doctest: +SKIP
    'on: /home/me/.cache/btseg/ov/3f2a...'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_OFF = ("0", "off", "no", "false")


def cache_root() -> Path:
    """The user cache folder for compiled models (see the module docstring)."""
    if os.environ.get("BTSEG_CACHE_DIR"):
        return Path(os.environ["BTSEG_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "btseg" / "ov"


def artifact_key(path: Path) -> str:
    """sha256 over the artifact's files: the file itself, and an IR's ``.bin`` beside it."""
    from btseg.io import sha256_file

    parts = [sha256_file(path)]
    weights = path.with_suffix(".bin")
    if path.suffix == ".xml" and weights.is_file():
        parts.append(sha256_file(weights))
    return parts[0] if len(parts) == 1 else hashlib.sha256("".join(parts).encode()).hexdigest()


def model_cache_dir(path: Path, cache: bool | str | os.PathLike | None) -> tuple[Path | None, str]:
    """The cache folder for ``path`` (created) and a one-line state for ``info()``.

    ``cache``: None = the user cache root unless ``BTSEG_OV_CACHE`` says off; a path = that
    root; False = off.  A root that cannot be created is not an error: caching is off and
    the state says why.
    """
    if cache is False or (cache is None and os.environ.get("BTSEG_OV_CACHE", "").lower() in _OFF):
        return None, "off"
    root = cache_root() if cache is None or cache is True else Path(cache)
    folder = root / artifact_key(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, f"off: cannot create {folder} ({e.strerror or e})"
    if not os.access(folder, os.W_OK | os.X_OK):
        return None, f"off: {folder} is not writable"
    return folder, f"on: {folder}"
