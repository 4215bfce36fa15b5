"""The DICOM node's receiving side: a pynetdicom storage SCP that files MR instances into the inbox, and a
background thread that finishes the studies gone quiet and hands them on.

It accepts MR Image Storage and Enhanced MR Image Storage in the uncompressed transfer syntaxes, and C-ECHO.
An instance is acknowledged only once it is on the disk; an allow-list of calling AE titles (empty: any)
turns other callers away at association time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import EnhancedMRImageStorage, MRImageStorage, Verification

from neurotriage.pacs.inbox import CompleteCallback, Inbox, InstanceRefused, StudyState, record_event
from neurotriage.signals import stop_on_signals

log = logging.getLogger("neurotriage.pacs")

STORAGE_CLASSES = (MRImageStorage, EnhancedMRImageStorage)
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700  # the instance could not be written: the sender keeps it and may retry
STATUS_CANNOT_UNDERSTAND = 0xC000  # no valid Study/Series/SOP Instance UID to file it under


@dataclass(frozen=True)
class ListenerConfig:
    """Where and as whom the listener answers; port 0 takes a free port (see `Listener.port`)."""

    ae_title: str = "NEUROTRIAGE"
    host: str = "127.0.0.1"
    port: int = 11112
    allowed_aes: tuple[str, ...] = ()  # calling AE titles accepted; empty: any
    check_s: float = 1.0  # how often quiet studies are looked for


def log_complete(study_dir: Path, state: StudyState) -> None:
    """The hand-off that only reports: the study stays `complete`."""
    log.info(
        "study %s complete: %d instances, patient %s", state.study_uid, state.instances, state.patient.get("PatientID")
    )


class Listener:
    """A running DICOM listener: `start()`, then `stop()` (or use it as a context manager)."""

    def __init__(self, inbox: Inbox, config: ListenerConfig, on_complete: CompleteCallback = log_complete) -> None:
        self.inbox = inbox
        self.config = config
        self.on_complete = on_complete
        self._ae = _application_entity(config)
        self._server = None
        self._stopping = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="neurotriage-inbox", daemon=True)
        self._received: dict[Association, list[int]] = {}  # new and duplicate instances per association

    @property
    def port(self) -> int:
        """The port the listener is bound to."""
        return self._server.server_address[1]

    def start(self) -> None:
        """Pick up the studies left open, then accept associations and watch for quiet studies."""
        for state in self.inbox.recover():
            log.info("study %s picked up again: %d instances on disk", state.study_uid, state.instances)
        if not self.config.allowed_aes:
            log.warning("accepting associations from any calling AE title (no allow-list set)")
        handlers = [
            (evt.EVT_C_STORE, self._store),
            (evt.EVT_RELEASED, self._ended),
            (evt.EVT_ABORTED, self._ended),
            (evt.EVT_REJECTED, self._rejected),
        ]
        self._server = self._ae.start_server((self.config.host, self.config.port), block=False, evt_handlers=handlers)
        self._monitor.start()

    def stop(self) -> None:
        """Stop accepting, abort associations in progress (their unacknowledged instances are the sender's to
        resend) and write the inbox's counts."""
        self._stopping.set()
        self._ae.shutdown()
        if self._monitor.is_alive():
            self._monitor.join()
        self.inbox.flush()

    def __enter__(self) -> Listener:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _store(self, event: Event) -> int:
        counts = self._received.setdefault(event.assoc, [0, 0])
        try:
            new = self.inbox.store(event.dataset, event.encoded_dataset(), event.assoc.requestor.ae_title)
        except InstanceRefused as exc:
            log.error("%s: instance refused: %s", _peer(event.assoc), exc)
            return STATUS_CANNOT_UNDERSTAND
        except OSError as exc:
            log.error("%s: instance not stored: %s", _peer(event.assoc), exc)
            return STATUS_OUT_OF_RESOURCES
        counts[0 if new else 1] += 1
        return STATUS_SUCCESS

    def _ended(self, event: Event) -> None:
        new, duplicates = self._received.pop(event.assoc, [0, 0])
        how = "released" if event.event is evt.EVT_RELEASED else "aborted"
        log.info("%s: association %s, %d instances stored, %d duplicates", _peer(event.assoc), how, new, duplicates)

    def _rejected(self, event: Event) -> None:
        allowed = self.config.allowed_aes
        refused_title = bool(allowed) and event.assoc.requestor.ae_title not in allowed
        why = "calling AE title not in the allow-list" if refused_title else "refused"
        log.warning("association from %s rejected: %s", _peer(event.assoc), why)
        record_event("rejected", f"association from {_peer(event.assoc)} rejected: {why}")

    def _watch(self) -> None:
        while not self._stopping.wait(self.config.check_s):
            try:
                self.inbox.complete_due(self.on_complete)
            except Exception:  # a full disk or a broken state file must not stop the listening
                log.exception("checking the inbox for complete studies failed")


def _application_entity(config: ListenerConfig) -> AE:
    ae = AE(ae_title=config.ae_title)
    for sop_class in STORAGE_CLASSES:
        ae.add_supported_context(sop_class)  # uncompressed transfer syntaxes: ingest reads them without codecs
    ae.add_supported_context(Verification)
    ae.require_calling_aet = list(config.allowed_aes)
    return ae


def _peer(assoc: Association) -> str:
    requestor = assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"


def listen(
    inbox: Inbox,
    config: ListenerConfig,
    on_complete: CompleteCallback = log_complete,
    worker: Callable[[threading.Event], None] | None = None,
) -> None:
    """Run a listener (and `worker`, in a thread, given the stop event) until SIGTERM or SIGINT, then stop both."""
    stop = threading.Event()
    with stop_on_signals(stop, log.info), Listener(inbox, config, on_complete) as listener:
        log.info("DICOM listener %s on %s port %d", config.ae_title, config.host, listener.port)
        thread = threading.Thread(target=worker, args=(stop,), name="dicom-node-worker") if worker else None
        if thread is not None:
            thread.start()
        while not stop.wait(1.0):  # a timed wait: the signal handler runs between waits on every platform
            pass
        if thread is not None:
            thread.join()
