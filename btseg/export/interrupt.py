"""SIGTERM/SIGINT during an export: stop, leaving nothing that looks whole, and never "finish anyway".

The first design raised ``SystemExit`` from the signal handler, so that ``finally`` blocks
removed the staging directory.  An exception raised at an arbitrary bytecode is not safe in
library code: measured with a SIGTERM at several delays into an export,

* inside ``torch.export`` the exit was caught as an export failure, btseg fell back to the
  TorchScript exporter and **the export finished with exit 0**: the signal was swallowed;
* once (CI, under load) the process **aborted** (SIGABRT, exit -6) instead of exiting 143.

Now the handler raises nothing.  Outside a critical step it removes this process's staging
directories and ends the process at once with ``os._exit(128 + signum)``.  The package lock
is an ``flock`` and goes with the process.  Inside a critical step (installing an artifact
and its manifest record, pruning stale artifacts, copying weights for ``--out``), the signal
is held until the step has completed or rolled back, then acted on.  So the package is
always either as before or as after one whole step.  A native worker thread still writing
into a staging directory can leave files behind it.  Those are in a hidden
``.export-staging-*`` directory that nothing loads, and the next export removes it.

Once the process is exiting, its outcome is decided: ``btseg-export`` also ignores the
signals during the interpreter's teardown (:func:`btseg.cli.common.quiet_teardown`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Iterator

_live: set[Path] = set()
_depth = 0
_pending: int | None = None
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install() -> None:
    """Handle SIGTERM and SIGINT with :func:`on_signal` from now on."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_signal)


@contextlib.contextmanager
def staging(path: Path) -> Iterator[Path]:
    """Register ``path`` as this process's staging directory for as long as the block runs."""
    _live.add(path)
    try:
        yield path
    finally:
        _live.discard(path)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A step that must complete or roll back as a whole: a signal waits for its end."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            _stop(_pending)


def on_signal(signum: int, frame: object) -> None:
    """The handler ``btseg-export`` installs for SIGTERM and SIGINT."""
    global _pending
    if _depth:
        _pending = signum
        return
    _stop(signum)


def _stop(signum: int) -> None:
    for path in list(_live):
        shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(Exception):
        sys.stderr.write(f"error: export stopped by signal {signum}; staging removed, the package holds only "
                         "complete steps\n")
        sys.stderr.flush()
    os._exit(128 + signum)
