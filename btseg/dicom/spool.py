"""The DICOM node's durable queue on disk: nothing received is lost on a restart.

Layout under the node's ``--out``::

    incoming/<SOPInstanceUID>.dcm    received, written atomically BEFORE C-STORE success; not yet processed
    incoming/<SOPInstanceUID>.json   who sent it, when (written before the .dcm)
    received/<SOPInstanceUID>.dcm    processed (moved here once its outputs are written)
    results/<SOPInstanceUID>_seg.dcm, _sr.dcm, _mask.png, _overlay.png, .json   the predict outputs
    refused/<SOPInstanceUID>.json    why an instance was refused (and refused/<uid>.dcm when it was received)

On start, every ``incoming/*.dcm`` is processed again (:meth:`Spool.backlog`).

Example::

    >>> spool = Spool(Path("node-out"))                            # doctest: +SKIP
    >>> path = spool.receive(uid, encoded_bytes, {"calling_aet": "CART1"})   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from btseg.errors import ArtifactError, DataError
from btseg.io import atomic_write, read_json, write_json

_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def safe_uid(uid: str) -> str:
    """A SOP Instance UID usable as a file name (digits and dots, at most 64); DataError otherwise."""
    uid = str(uid).strip().rstrip("\0")
    if not (0 < len(uid) <= 64 and _UID.fullmatch(uid)):
        raise DataError(f"SOP Instance UID {uid[:80]!r} is not a valid UID (digits and dots, at most 64 characters)")
    return uid


class Spool:
    """Folders of one node: incoming (the queue on disk), received, results, refused."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming, self.received = self.root / "incoming", self.root / "received"
        self.results, self.refused = self.root / "results", self.root / "refused"
        for d in (self.incoming, self.received, self.results, self.refused):
            d.mkdir(parents=True, exist_ok=True)

    def receive(self, uid: str, data: bytes, meta: dict[str, Any]) -> Path:
        """Write one received instance (and who sent it) to ``incoming/`` atomically; returns its path."""
        uid = safe_uid(uid)
        write_json(self.incoming / f"{uid}.json", meta)
        path = self.incoming / f"{uid}.dcm"
        with atomic_write(path, "wb") as f:
            f.write(data)
        return path

    def meta(self, path: Path) -> dict[str, Any]:
        """The sender record of an incoming instance ({} when it is missing or unreadable)."""
        try:
            rec = read_json(path.with_suffix(".json"))
        except (ArtifactError, OSError):  # a lost sidecar never stops processing
            return {}
        return rec if isinstance(rec, dict) else {}

    def backlog(self) -> list[Path]:
        """Instances received but not processed (oldest first): what a restart processes."""
        return sorted(self.incoming.glob("*.dcm"), key=lambda p: (p.stat().st_mtime, p.name))

    def done(self, path: Path) -> Path:
        """Move a processed instance out of ``incoming/``; returns its new path."""
        target = self.received / path.name
        os.replace(path, target)
        self._drop_meta(path)
        return target

    def refuse(self, uid: str, reason: str, meta: dict[str, Any], path: Path | None = None) -> None:
        """Record a refusal (``refused/<uid>.json``); move the received file there too."""
        uid = safe_uid(uid) if _UID.fullmatch(str(uid).strip().rstrip("\0")) else "unknown"
        rec = {**meta, "sop_instance_uid": uid, "refused": reason}
        if path is not None and path.exists():
            os.replace(path, self.refused / path.name)
            self._drop_meta(path)
        with atomic_write(self.refused / f"{uid}.json") as f:
            json.dump(rec, f, indent=2)

    @staticmethod
    def _drop_meta(path: Path) -> None:
        try:
            path.with_suffix(".json").unlink()
        except FileNotFoundError:
            pass
