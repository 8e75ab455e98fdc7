"""The TensorRT timing cache file, with every return value of TensorRT's API checked.

``IBuilderConfig.create_timing_cache`` may return None (or raise on a corrupt file),
``set_timing_cache`` returns False for a cache from another GPU or TensorRT version, and
``get_timing_cache`` may return None after a build: each case falls back (a fresh cache,
or no cache) and is recorded in the manifest's ``extra.timing_cache.events``, so a rejected
cache is never reported as reused.

The file is read like every cache (:func:`btseg.io.read_regular`: a regular file, not a
link, at most :data:`MAX_BYTES`; a FIFO or ``/dev/zero`` is refused at once) and must match
the sha256 recorded beside it (``<file>.sha256``, written with it); a file that does not
is not handed to TensorRT, and the build starts a fresh cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from btseg.errors import ArtifactError
from btseg.io import atomic_write, read_regular

TIMING_CACHE = "tensorrt.timing.cache"
MAX_BYTES = 256 << 20


class TimingCache:
    """The timing cache file, with every TensorRT return value checked and recorded."""

    def __init__(self, path: Path | None) -> None:
        self.path = Path(path) if path else None
        self.reused = False
        self.skip_file = False  # after a build that failed with the reused cache
        self.events: list[str] = []
        self.saved = False

    def note(self, event: str) -> None:
        self.events.append(event)

    def attach(self, config: Any) -> None:
        """Load the file into ``config`` if TensorRT accepts it, else a fresh cache, else none."""
        self.reused = False
        if self.path is None:
            return
        data = b""
        if os.path.lexists(self.path) and not self.skip_file:
            try:
                data = self._read_checked()
            except ArtifactError as e:
                self.note(f"refused ({e}); not used")
        if data:
            from btseg.runtime.tensorrt_backend import TRT_EXCEPTIONS

            try:
                cache = config.create_timing_cache(data)
            except TRT_EXCEPTIONS:  # a corrupt file may raise instead of returning None
                cache = None
            if cache is None:
                self.note(f"{len(data)} bytes TensorRT cannot read; not used")
            elif not config.set_timing_cache(cache, False):
                self.note("rejected by TensorRT (another GPU or TensorRT version); not used")
            else:
                self.reused = True
                self.note(f"reused ({len(data)} bytes)")
                return
        cache = config.create_timing_cache(b"")
        if cache is None or not config.set_timing_cache(cache, False):
            self.note("TensorRT could not create a new cache; built without one")
        else:
            self.note("new")

    def save(self, config: Any) -> None:
        """Write the cache after a successful build (if TensorRT gives one back)."""
        if self.path is None:
            return
        cache = config.get_timing_cache()
        data = cache.serialize() if cache is not None else None
        if data is None:
            self.note("TensorRT returned no cache after the build; not saved")
            return
        try:  # the engine is built: a cache that cannot be written costs the next build time only
            write_cache(self.path, bytes(data))
        except (OSError, ArtifactError) as e:
            self.note(f"could not be written ({e.strerror or e}); not saved")
            return
        self.saved = True

    def _read_checked(self) -> bytes:
        assert self.path is not None
        data = read_regular(self.path, MAX_BYTES, "timing cache")
        want = read_regular(sha_path(self.path), 128, "timing cache sha256").decode("ascii", "replace").strip()
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise ArtifactError(f"{self.path}: sha256 {got[:12]}... does not match its record {want[:12]}...")
        return data

    def record(self) -> dict[str, Any] | None:
        if self.path is None and not self.events:
            return None
        return {"file": TIMING_CACHE, "reused": self.reused, "saved": self.saved, "events": self.events}


def sha_path(path: Path) -> Path:
    """Where the timing cache's sha256 is recorded."""
    return path.with_name(path.name + ".sha256")


def write_cache(path: Path, data: bytes) -> None:
    """Write a timing cache, then its sha256 record (each atomically)."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    with atomic_write(sha_path(path)) as f:
        f.write(hashlib.sha256(data).hexdigest() + "\n")
