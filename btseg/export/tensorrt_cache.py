"""The TensorRT timing cache file, with every return value of TensorRT's API checked.

``IBuilderConfig.create_timing_cache`` may return None (or raise on a corrupt file),
``set_timing_cache`` returns False for a cache from another GPU or TensorRT version, and
``get_timing_cache`` may return None after a build: each case falls back (a fresh cache,
or no cache) and is recorded in the manifest's ``extra.timing_cache.events``, so a rejected
cache is never reported as reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from btseg.io import atomic_write

TIMING_CACHE = "tensorrt.timing.cache"


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
        if self.path.is_file() and not self.skip_file:
            try:
                data = self.path.read_bytes()
            except OSError as e:
                self.note(f"unreadable ({e.strerror or e}); not used")
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
            with atomic_write(self.path, "wb") as f:
                f.write(memoryview(data))
        except OSError as e:
            self.note(f"could not be written ({e.strerror or e}); not saved")
            return
        self.saved = True

    def record(self) -> dict[str, Any] | None:
        if self.path is None and not self.events:
            return None
        return {"file": TIMING_CACHE, "reused": self.reused, "saved": self.saved, "events": self.events}
