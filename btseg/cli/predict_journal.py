"""The ``--out`` lock and the journal of a run's outputs: no orphan, no interleaving.

* **Lock.**  A run holds an exclusive ``fcntl.flock`` on the ``--out`` folder itself for
  its whole life (no lock file to race on; the kernel drops it when the process dies).  A
  second run into the same folder is refused at once with one line naming the holder's
  pid, exit 2: two runs never write beside each other.
* **Journal** (``--out/.btseg-predict.journal``, JSON lines, fsync'ed).  Every writer
  registers each file *before* it writes it, in a group that is one frame's outputs (mask,
  overlay, record; ``--dicom`` objects join the same group); the group is committed once
  its last file is whole.  A group that fails (disk full, a decoder fault) removes what it
  began, at once.  A run that ends normally removes the journal.  A run that is killed
  (SIGTERM/SIGINT: handled, the groups in flight finish or roll back, exit 128+signal;
  SIGKILL, power loss: nothing runs) leaves the journal, and the next run into that folder
  (any run: it holds the lock, so the writer is dead) first removes every uncommitted file
  and the atomic writers' temporary files, then plans its outputs.  So a rerun with
  ``--overwrite`` or ``--resume`` completes the batch and no orphan is ever left.
* **Writability** is checked here, before the model is loaded: a ``--out`` that cannot be
  created or written is a ConfigError (exit 2).

Other writers register through the same object::

    with run.journal.group() as g:
        write_png(g.add(out / "a_mask.png"), mask)
        write_seg(g.add(out / "a_seg.dcm"), ...)      # e.g. a DICOM SEG writer
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

from btseg.errors import ConfigError

JOURNAL = ".btseg-predict.journal"


class Group:
    """One frame's outputs: registered before writing, committed together (see module doc)."""

    def __init__(self, journal: "OutputJournal") -> None:
        self._journal = journal
        self.paths: list[Path] = []

    def add(self, path: Path) -> Path:
        """Register ``path`` in the journal (fsync'ed) before it is written; returns it."""
        self._journal.append({"begin": self._journal.rel(path), "t": time.time()})
        self.paths.append(Path(path))
        return Path(path)


class OutputJournal:
    """The append-only journal of one run's outputs in ``out`` (see the module docstring)."""

    def __init__(self, out: Path, fd: int) -> None:
        self.out = Path(out)
        self._fd = fd
        self._lock = threading.Lock()

    def rel(self, path: Path) -> str:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(self.out))

    def append(self, entry: dict) -> None:
        line = (json.dumps(entry) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)

    @contextlib.contextmanager
    def group(self) -> Iterator[Group]:
        """A group of files written together; on any exception the ones it registered are
        removed (with their temporary files) and the exception goes on."""
        g = Group(self)
        try:
            yield g
        except BaseException:
            _remove([self.rel(p) for p in g.paths], self.out)
            self.append({"abort": [self.rel(p) for p in g.paths]})
            raise
        self.append({"commit": [self.rel(p) for p in g.paths]})


class OutputRun:
    """Hold ``out``'s lock, recover an interrupted run's journal, keep this run's journal.

    Use as a context manager around everything that writes; ConfigError (exit 2) when
    ``out`` cannot be created or written, or another run holds it.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.recovered: list[str] = []
        self.journal: OutputJournal | None = None
        self.stopping = threading.Event()  # set by SIGTERM/SIGINT: workers stop between frames
        self._dir_fd = -1
        self._created = False
        self._saved: dict[int, object] = {}

    def stop_on_signals(self) -> None:
        """SIGTERM / SIGINT: set :attr:`stopping` and end the run with ``SystemExit(128 +
        signal)`` on the main thread; the groups in flight finish or roll back, and leaving
        the context removes anything uncommitted.  A second signal is only noted."""
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, _frame: object) -> None:
            if self.stopping.is_set():
                return
            self.stopping.set()
            raise SystemExit(128 + signum)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._saved[sig] = signal.signal(sig, handler)

    def __enter__(self) -> "OutputRun":
        self._created = not os.path.lexists(self.out)
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._dir_fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise ConfigError(f"--out {self.out}: cannot create or open it ({e.strerror or e})") from e
        try:
            fcntl.flock(self._dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._dir_fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ConfigError(f"--out {self.out}: cannot lock it ({e.strerror or e})") from e
            raise ConfigError(f"--out {self.out}: another btseg-predict run{_holder(self.out)} is writing there; "
                              "wait for it to finish or choose another --out") from e
        try:
            self.recovered = recover(self.out)
            fd = os.open(self.out / JOURNAL, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW,
                         0o644)
            self.journal = OutputJournal(self.out, fd)
            self.journal.append({"pid": os.getpid()})
            probe = self.out / f".btseg-write-test.{os.getpid()}"
            probe.write_bytes(b"x")  # the journal is tiny: check a real data write too
            probe.unlink()
        except OSError as e:
            self.__exit__(None, None, None)
            raise ConfigError(f"--out {self.out}: not writable ({e.strerror or e}); nothing was run") from e
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.journal is not None:
            os.close(self.journal._fd)
            self.journal = None
            if exc_type is not None:  # interrupted: what is still uncommitted goes now
                recover(self.out)
            with contextlib.suppress(OSError):
                (self.out / JOURNAL).unlink()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)  # releases the flock
            self._dir_fd = -1
        if exc_type is not None and self._created:
            with contextlib.suppress(OSError):
                self.out.rmdir()  # a run refused before writing leaves no new empty --out (only if empty)
        for sig, old in self._saved.items():
            signal.signal(sig, old)  # type: ignore[arg-type]
        self._saved.clear()


def recover(out: Path) -> list[str]:
    """Remove every file an earlier run's journal began and never committed (and the
    atomic writers' temporary files for them); returns their paths relative to ``out``."""
    path = Path(out) / JOURNAL
    try:
        from btseg.io import read_regular

        lines = read_regular(path, 64 << 20, "output journal").decode("utf-8", "replace").splitlines()
    except Exception:  # noqa: BLE001 - no journal (or not a regular file): nothing to recover
        return []
    open_files: dict[str, float] = {}
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue  # a line cut by the crash
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("begin"), str):
            t = entry.get("t")
            open_files[entry["begin"]] = float(t) if isinstance(t, (int, float)) else 0.0
        for key in ("commit", "abort"):
            for rel in entry.get(key) or []:
                open_files.pop(rel, None) if isinstance(rel, str) else None
    removed = _remove(list(open_files), Path(out), open_files)
    with contextlib.suppress(OSError):
        path.unlink()
    return removed


def _remove(rels: list[str], out: Path, since: dict[str, float] | None = None) -> list[str]:
    """Remove ``out/rel`` for each rel (and its temporary files): only inside ``out`` (real
    paths, so no symlinked folder leads out) and, given ``since``, only a file modified
    after its journal entry was made (a file older than that was not written by that run)."""
    removed = []
    root = os.path.realpath(out)
    for rel in rels:
        p = Path(os.path.normpath(Path(out) / rel))
        parent = os.path.realpath(p.parent)
        if not (parent == root or parent.startswith(root + os.sep)) or not str(p).startswith(str(Path(out)) + os.sep):
            continue  # a journal never names anything outside --out
        with contextlib.suppress(OSError):
            if since is not None and os.lstat(p).st_mtime < since.get(rel, 0.0) - 2.0:
                continue
        for tmp in p.parent.glob(f".{_glob_escape(p.stem)}.*.tmp{_glob_escape(p.suffix)}"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        with contextlib.suppress(OSError):
            if os.path.lexists(p) and not p.is_dir():
                p.unlink()
                removed.append(rel)
    return removed


def _holder(out: Path) -> str:
    from btseg.io import open_regular

    try:
        fd = open_regular(Path(out) / JOURNAL, "output journal")  # never a FIFO: it would block
        try:
            first = os.read(fd, 200).split(b"\n")[0]
        finally:
            os.close(fd)
        return f" (pid {int(json.loads(first)['pid'])})"
    except Exception:  # noqa: BLE001 - the pid is a courtesy
        return ""


def _glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)
