"""A DICOM node on pynetdicom: Storage SCP + Verification, a bounded queue and one worker.

* **C-STORE** answers fast: the node checks the sender's header (parsable, a SOP Instance UID,
  the modality policy of :func:`btseg.runtime.dicom_meta.check_modality`), writes the instance
  atomically to ``incoming/`` (:class:`~btseg.dicom.spool.Spool`) and only then answers success.
  Segmentation runs behind it in one worker thread, through the ``process`` callable the node is
  given (``btseg-serve`` gives it the btseg-predict path itself).
* **Statuses**: 0x0000 stored; 0xA700 out of resources: the queue is full (back-pressure: the
  sender should retry later) or the disk write failed; 0xC000 the dataset cannot be parsed or has
  no valid SOP Instance UID; 0xC001 refused by the modality policy (a CT, say).  Every refusal is
  also recorded in ``refused/<uid>.json`` and logged.  A refusal found later by the worker (pixel
  data that cannot be decoded, a failed integrity check) is recorded the same way.
* **Restart**: what is in ``incoming/`` when the node starts is processed first (``btseg-serve``
  holds btseg-predict's output lock and journal on ``results/``, so what a killed node left
  half-written there is removed first).
* **Stop**: :meth:`DicomNode.stop` stops accepting associations (aborting open ones: their
  senders get no success and resend), lets the worker finish the instance in progress, and
  leaves queued instances in ``incoming/`` for the next start.
* **Log**: one line per instance: calling AE title and address, SOP Instance UID, outcome, ms.
* Not done: TLS, authentication beyond calling AE titles, C-FIND/C-MOVE, retries of a failed
  forward (the SEG and SR stay in ``results/``; the failure is logged).

Example::

    >>> node = DicomNode(NodeConfig(out=Path("node-out")), process=my_predict)   # doctest: +SKIP
    >>> node.start(); ...; node.stop(timeout=30)                                  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from btseg.dicom.spool import Spool, safe_uid
from btseg.errors import ConfigError, DataError, ModalityError

LOG = logging.getLogger("btseg.serve")
STORED, OUT_OF_RESOURCES, CANNOT_UNDERSTAND, REFUSED_MODALITY = 0x0000, 0xA700, 0xC000, 0xC001
SEG_SOP, SR_SOP = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.34"


@dataclass(frozen=True)
class Forward:
    """Where SEG and SR go on to: ``HOST:PORT:AET``."""

    host: str
    port: int
    aet: str

    @classmethod
    def parse(cls, text: str) -> "Forward":
        """``HOST:PORT:AET`` -> Forward; ConfigError naming the expected form."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not 0 < int(parts[1]) < 65536 \
                or not 0 < len(parts[2]) <= 16:
            raise ConfigError(f"--forward {text!r}: expected HOST:PORT:AET (e.g. pacs.local:104:PACS), "
                              "port 1-65535, AE title of 1-16 characters")
        return cls(parts[0], int(parts[1]), parts[2])


@dataclass
class Outcome:
    """What the worker's ``process`` made of one instance."""

    status: str  # "ok" | "refused" | "failed"
    detail: str = ""
    outputs: list[Path] = field(default_factory=list)  # SEG and SR files to forward


@dataclass
class NodeConfig:
    """``btseg-serve dicom`` options (see its --help)."""

    out: Path
    host: str = "127.0.0.1"
    port: int = 11112
    aet: str = "BTSEG"
    allow_aets: tuple[str, ...] = ()
    queue: int = 16
    forward: Forward | None = None
    allow_modalities: tuple[str, ...] = ()


class DicomNode:
    """Storage SCP + Verification over a bounded queue and one worker (see the module doc)."""

    def __init__(self, cfg: NodeConfig, process: Callable[[Path], Outcome]) -> None:
        if not 0 < len(cfg.aet) <= 16:
            raise ConfigError(f"--aet {cfg.aet!r}: an AE title has 1-16 characters")
        if cfg.queue < 1:
            raise ConfigError(f"--queue {cfg.queue}: expected at least 1")
        self.cfg, self.process = cfg, process
        self.spool = Spool(cfg.out)
        self.queue: queue.Queue = queue.Queue(maxsize=cfg.queue)
        self.pending: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.server: Any = None
        self.worker: threading.Thread | None = None
        self.counts = {"stored": 0, "ok": 0, "refused": 0, "failed": 0, "busy": 0}

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Take the restart backlog, start the worker, then listen (non-blocking)."""
        from pynetdicom import AE, evt
        from pynetdicom.presentation import StoragePresentationContexts, VerificationPresentationContexts

        backlog = self.spool.backlog()
        with self._lock:
            self.pending |= {p.stem for p in backlog}
        if backlog:
            LOG.info("restart: %d instance(s) received earlier but not processed; processing them first", len(backlog))
        self.worker = threading.Thread(target=self._work, args=(backlog,), name="btseg-serve-worker", daemon=True)
        self.worker.start()
        ae = AE(ae_title=self.cfg.aet)
        # pynetdicom's 120 common storage SOP classes (US, US multi-frame, secondary capture, CT,
        # MR, ...; a non-ultrasound one is then refused by status, not by a missing context)
        ae.supported_contexts = StoragePresentationContexts + VerificationPresentationContexts
        ae.require_calling_aet = list(self.cfg.allow_aets)
        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_C_ECHO, self._on_echo)]
        try:
            self.server = ae.start_server((self.cfg.host, self.cfg.port), block=False, evt_handlers=handlers)
        except OSError as e:
            self._stop.set()
            raise ConfigError(f"cannot listen on {self.cfg.host}:{self.cfg.port} ({e.strerror or e})") from e
        LOG.info("listening on %s:%d as %s; outputs in %s", self.cfg.host, self.cfg.port, self.cfg.aet, self.cfg.out)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop accepting, let the worker finish its instance; True when it did within ``timeout`` s."""
        self._stop.set()
        if self.server is not None:
            for assoc in list(self.server.active_associations):
                assoc.abort()
            self.server.shutdown()
        if self.worker is not None:
            self.worker.join(timeout)
            return not self.worker.is_alive()
        return True

    # -- the SCP side ----------------------------------------------------------------------
    @staticmethod
    def _on_echo(event: Any) -> int:
        return STORED

    def _on_store(self, event: Any) -> Any:
        import pydicom

        t0 = time.monotonic()
        who = {"calling_aet": str(event.assoc.requestor.ae_title).strip(),
               "address": f"{event.assoc.requestor.address}:{event.assoc.requestor.port}",
               "received_at": time.time()}
        raw_uid = str(event.request.AffectedSOPInstanceUID or "")
        if self._stop.is_set() or self.queue.full():
            self.counts["busy"] += 1
            why = "stopping" if self._stop.is_set() else f"queue full ({self.cfg.queue} waiting)"
            self._log(who, raw_uid, f"busy: {why}; answered 0xA700 out of resources (sender retries)", t0)
            return OUT_OF_RESOURCES
        try:
            uid = safe_uid(raw_uid)
            data = event.encoded_dataset()
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001 - whatever the peer sent, the node answers and keeps serving
            return self._refuse(who, raw_uid, f"dataset cannot be parsed ({_short(e)})", CANNOT_UNDERSTAND, t0)
        from btseg.runtime.dicom_meta import check_modality

        try:
            check_modality(ds, f"SOP instance {uid}", self.cfg.allow_modalities)
        except ModalityError as e:
            return self._refuse(who, uid, str(e), REFUSED_MODALITY, t0)
        with self._lock:
            if uid in self.pending:
                self._log(who, uid, "duplicate of a queued instance; stored once", t0)
                return STORED
            self.pending.add(uid)
        try:
            path = self.spool.receive(uid, data, who)  # on disk BEFORE the success status
            self.queue.put_nowait((path, who, t0))
        except (OSError, queue.Full) as e:
            with self._lock:
                self.pending.discard(uid)
            self.spool.incoming.joinpath(f"{uid}.dcm").unlink(missing_ok=True)
            self._log(who, uid, f"busy: {_short(e) or 'queue full'}; answered 0xA700 out of resources", t0)
            return OUT_OF_RESOURCES
        self.counts["stored"] += 1
        return STORED

    def _refuse(self, who: dict[str, Any], uid: str, reason: str, status: int, t0: float) -> Any:
        from pydicom.dataset import Dataset

        self.counts["refused"] += 1
        try:
            self.spool.refuse(uid, reason, who)
        except (OSError, DataError):
            pass
        self._log(who, uid, f"refused 0x{status:04X}: {reason}", t0)
        rsp = Dataset()
        rsp.Status, rsp.ErrorComment = status, reason[:64]
        return rsp

    # -- the worker ------------------------------------------------------------------------
    def _work(self, backlog: list[Path]) -> None:
        for path in backlog:
            if self._stop.is_set():
                return
            self._safely(path, {**self.spool.meta(path), "recovered": True}, time.monotonic())
        while not self._stop.is_set():
            try:
                path, who, t0 = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._safely(path, who, t0)

    def _safely(self, path: Path, who: dict[str, Any], t0: float) -> None:
        """:meth:`_handle`, and the worker lives on whatever happens (a full disk while moving a
        file): the instance then stays in incoming/ and is processed again at the next start."""
        try:
            self._handle(path, who, t0)
        except Exception as e:  # noqa: BLE001
            with self._lock:
                self.pending.discard(path.stem)
            self._log(who, path.stem, f"failed: {type(e).__name__}: {_short(e)}; left in incoming/ for the next "
                      "start", t0)

    def _handle(self, path: Path, who: dict[str, Any], t0: float) -> None:
        uid = path.stem
        t1 = time.monotonic()
        try:
            outcome = self.process(path)
        except Exception as e:  # noqa: BLE001 - one instance never stops the node
            outcome = Outcome("failed", f"{type(e).__name__}: {_short(e)}")
        self.counts[outcome.status] = self.counts.get(outcome.status, 0) + 1
        if outcome.status == "ok":
            self.spool.done(path)
            if self.cfg.forward is not None:
                outcome.detail += "; " + self._forward(outcome.outputs)
        else:
            self.spool.refuse(uid, outcome.detail, who, path)
        with self._lock:
            self.pending.discard(uid)
        self._log(who, uid, f"{outcome.status}: {outcome.detail}", t0,
                  f" process_ms={1000 * (time.monotonic() - t1):.0f}")

    def _forward(self, files: list[Path]) -> str:
        from pynetdicom import AE

        fwd = self.cfg.forward
        assert fwd is not None
        ae = AE(ae_title=self.cfg.aet)
        for sop in (SEG_SOP, SR_SOP):
            ae.add_requested_context(sop)
        try:
            assoc = ae.associate(fwd.host, fwd.port, ae_title=fwd.aet)
        except Exception as e:  # noqa: BLE001
            return f"forward to {fwd.aet}@{fwd.host}:{fwd.port} failed ({_short(e)})"
        if not assoc.is_established:
            return f"forward to {fwd.aet}@{fwd.host}:{fwd.port} failed (association rejected or aborted)"
        sent = []
        try:
            for f in files:
                rsp = assoc.send_c_store(str(f))
                code = getattr(rsp, "Status", None)
                sent.append(f"{f.name}=0x{code:04X}" if code is not None else f"{f.name}=no answer")
        finally:
            assoc.release()
        return f"forwarded to {fwd.aet}@{fwd.host}:{fwd.port}: {', '.join(sent)}"

    def _log(self, who: dict[str, Any], uid: str, outcome: str, t0: float, extra: str = "") -> None:
        LOG.info("%s@%s%s sop=%s %s total_ms=%.0f%s", who.get("calling_aet", "?"), who.get("address", "?"),
                 " (recovered)" if who.get("recovered") else "", uid or "?", outcome,
                 1000 * (time.monotonic() - t0), extra)


def _short(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[-1]
