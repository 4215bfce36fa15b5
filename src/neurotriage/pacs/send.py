"""Results back to a PACS: an outbox on disk, sent by C-STORE and retried with back-off while a destination is down.

Each queued item is a folder NEUROTRIAGE_HOME/dicom/outbox/<destination>/<item>/ holding its own copies of the
DICOM files and state.json; it is built in a hidden sibling and renamed into place, so an item is whole or absent,
and the files it was queued from are never touched. `send_pending` sends each due item over one association per
destination, every file in its own transfer syntax:

- a success (or warning: stored with changes) status for every file marks the item sent and removes its copies;
- a failure status from the destination fails the item for good, naming the status;
- a network failure (no connection, association rejected or aborted, no response) keeps it queued with the error,
  the next attempt NEUROTRIAGE_DICOM_SEND_RETRY_S later, the wait doubling per failure up to
  NEUROTRIAGE_DICOM_SEND_RETRY_MAX_S. Files already stored are not sent again.

A lock per item keeps two senders (the listener, the web app, the CLI) from sending one item at once.
"""

from __future__ import annotations

import fcntl
import logging
import re
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pydicom
from pydantic import BaseModel

from neurotriage.config import Settings, load_settings
from neurotriage.errors import UserError
from neurotriage.files import atomic_dir, write_json_atomic

if TYPE_CHECKING:
    from pynetdicom.association import Association

log = logging.getLogger(__name__)

CALLING_AE_TITLE = "NEUROTRIAGE"
CONNECT_TIMEOUT_S = 10.0
RESPONSE_TIMEOUT_S = 60.0
STATE_JSON = "state.json"
LOCK_NAME = ".lock"
DICOM_MAGIC_OFFSET = 128
DICOM_MAGIC = b"DICM"
# An AE title: 1 to 16 characters of the default repertoire, no backslash, not only spaces.
_AE_TITLE = re.compile(r"[\x20-\x5b\x5d-\x7e]{1,16}")
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9._@-]+")

State = Literal["queued", "sent", "failed"]


@dataclass(frozen=True)
class Destination:
    """A DICOM storage destination: the AE title it answers to and its network address."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @property
    def key(self) -> str:
        """The destination's outbox folder name."""
        return _UNSAFE_KEY.sub("_", f"{self.ae_title}@{self.host}_{self.port}")


class OutboxItem(BaseModel):
    """The state of one queued set of files, as state.json holds it."""

    destination: str
    files: list[str]  # names inside the item folder, in sending order
    delivered: list[str] = []  # those the destination has stored
    state: State = "queued"
    attempts: int = 0
    queued_at: datetime
    next_attempt: datetime | None  # None once sent or failed
    last_error: str | None = None
    sent_at: datetime | None = None


class ItemView(OutboxItem):
    """An outbox item with its folder, for the CLI and the web."""

    item: str


class SendSummary(BaseModel):
    """What one `send_pending` run did to each item it tried."""

    sent: int
    retrying: int
    failed: int
    items: list[ItemView]


class DestinationStatus(BaseModel):
    """One destination's outbox: counts by state, and the items not sent (oldest first) with their errors."""

    destination: str
    queued: int
    sent: int
    failed: int
    items: list[ItemView]


class OutboxStatus(BaseModel):
    """Every destination that has an outbox."""

    destinations: list[DestinationStatus]


def parse_destination(text: str, field: str = "send_to") -> Destination:
    """Parse `AET@host:port`; a UserError naming `field` says what is wrong."""
    ae_title, at, address = text.strip().rpartition("@")
    host, colon, port = address.rpartition(":")
    if not at or not colon:
        raise UserError(f"{text!r}: give the destination as AET@host:port", field=field)
    if not _AE_TITLE.fullmatch(ae_title) or not ae_title.strip():
        raise UserError(f"{text!r}: the AE title must be 1 to 16 printable characters, no backslash", field=field)
    host = host.removeprefix("[").removesuffix("]")  # [::1]:104
    if not host or any(c.isspace() for c in host):
        raise UserError(f"{text!r}: no host name", field=field)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UserError(f"{text!r}: the port must be a number from 1 to 65535", field=field)
    return Destination(ae_title=ae_title.strip(), host=host, port=int(port))


def resolve_destination(given: str | None, settings: Settings | None = None) -> Destination | None:
    """The destination `given`, else the configured default (NEUROTRIAGE_DICOM_SEND_TO), else None."""
    if given is not None:
        return parse_destination(given)
    configured = (settings or load_settings()).dicom_send_to
    if not configured:
        return None
    try:
        return parse_destination(configured)
    except UserError as exc:
        name = "NEUROTRIAGE_DICOM_SEND_TO"
        raise UserError(f"{name}={exc.message}", field=name) from None


def outbox_dir(settings: Settings | None = None) -> Path:
    """NEUROTRIAGE_HOME/dicom/outbox."""
    return (settings or load_settings()).home / "dicom" / "outbox"


def dicom_files(paths: Sequence[Path]) -> list[Path]:
    """The DICOM files among `paths`: each file must be one; a folder gives every DICOM file under it, sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = [p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".") and _is_dicom(p)]
            if not inside:
                raise UserError(f"{path}: holds no DICOM files", field="files")
            found += inside
        elif not path.is_file():
            raise UserError(f"{path}: no such file or folder", field="files")
        elif not _is_dicom(path):
            raise UserError(f"{path}: not a DICOM file (no DICM preamble)", field="files")
        else:
            found.append(path)
    return found


def report_objects(report_dir: Path) -> list[Path]:
    """The DICOM objects of a report folder: every DICOM file in its native/ folder (none when it has none)."""
    from neurotriage.report.folder import NATIVE_FOLDER

    native = Path(report_dir) / NATIVE_FOLDER
    return sorted(p for p in native.glob("*.dcm") if _is_dicom(p)) if native.is_dir() else []


def queue_results(files: list[Path], destination: Destination, now: datetime | None = None) -> Path:
    """Copy `files` into a new outbox item for `destination`, due at once; returns the item folder."""
    if not files:
        raise UserError("no DICOM files to send", field="files")
    for path in files:
        _storage_header(path)
    now = now or datetime.now(UTC)
    names = [f"{number:03d}-{Path(path).name}" for number, path in enumerate(files, 1)]
    item = OutboxItem(destination=str(destination), files=names, queued_at=now, next_attempt=now)
    folder = outbox_dir() / destination.key / f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    with atomic_dir(folder) as built:
        for path, name in zip(files, names, strict=True):
            shutil.copyfile(path, built / name)
        write_json_atomic(built / STATE_JSON, item.model_dump(mode="json"))
    log.info("queued %d DICOM objects for %s in %s", len(files), destination, folder)
    return folder


def send_pending(now: datetime | None = None, items: Sequence[Path] | None = None) -> SendSummary:
    """Send every due outbox item (or only the due ones among `items`), one association per destination."""
    now = now or datetime.now(UTC)
    settings = load_settings()
    tried: list[ItemView] = []
    with ExitStack() as locks:
        due = [(folder, state) for folder in _item_folders(items) if (state := _claim(folder, now, locks))]
        for destination, group in _by_destination(due).items():
            tried += _send_group(destination, group, now, settings)
    counts = {state: sum(view.state == state for view in tried) for state in ("sent", "queued", "failed")}
    return SendSummary(sent=counts["sent"], retrying=counts["queued"], failed=counts["failed"], items=tried)


def retry_until_stopped(stop: threading.Event) -> None:
    """Send the due outbox items every NEUROTRIAGE_DICOM_SEND_RETRY_S seconds (the first back-off wait) until
    `stop` is set; for a long-running process (`listen`, the web app) beside which nobody runs `send --pending`."""
    while not stop.wait(load_settings().dicom_send_retry_s):
        try:
            summary = send_pending()
        except Exception:  # a damaged item must not end the retries of the others for the life of the process
            log.exception("outbox: retry failed; trying again later")
            continue
        if summary.sent or summary.failed:
            log.info("outbox: %d sent, %d failed, %d waiting", summary.sent, summary.failed, summary.retrying)


def outbox_status() -> OutboxStatus:
    """Counts per destination and state, with every item not yet sent and its last error."""
    destinations = []
    root = outbox_dir()
    for dest_folder in _visible(root):
        views = [_view(folder, read_item(folder)) for folder in _visible(dest_folder)]
        if not views:
            continue
        counts = {state: sum(view.state == state for view in views) for state in ("queued", "sent", "failed")}
        pending = [view for view in views if view.state != "sent"]
        destinations.append(DestinationStatus(destination=views[0].destination, items=pending, **counts))
    return OutboxStatus(destinations=destinations)


def read_item(folder: Path) -> OutboxItem:
    """The state of the outbox item in `folder`."""
    return OutboxItem.model_validate_json((Path(folder) / STATE_JSON).read_text(encoding="utf-8"))


def describe(view: OutboxItem) -> str:
    """One line on an item: sent, queued with the reason and when it is tried next, or failed with the reason."""
    ae_title = view.destination.rpartition("@")[0]
    if view.state == "sent":
        return f"sent {len(view.files)} objects to {ae_title}"
    if view.state == "failed":
        return f"failed: {view.last_error}; not sent to {ae_title}"
    when = f" at {view.next_attempt.astimezone():%H:%M:%S}" if view.next_attempt else ""
    return f"queued: {view.last_error or 'not tried yet'}, will retry{when}"


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as stream:
            stream.seek(DICOM_MAGIC_OFFSET)
            return stream.read(len(DICOM_MAGIC)) == DICOM_MAGIC
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})", field="files") from exc


def _storage_header(path: Path) -> tuple[str, str]:
    """The file's SOP class and transfer syntax; UserError naming the file unless it is a storage object."""
    from pynetdicom.service_class import StorageServiceClass
    from pynetdicom.sop_class import uid_to_service_class

    try:
        meta = pydicom.dcmread(path, stop_before_pixels=True).file_meta
    except Exception as exc:  # pydicom raises many types on damaged data; any of them means a corrupt file
        raise UserError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})", field="files") from exc
    sop_class, syntax = meta.get("MediaStorageSOPClassUID"), meta.get("TransferSyntaxUID")
    if not sop_class or not syntax:
        raise UserError(f"{path}: no SOP class or transfer syntax in its file meta information", field="files")
    if uid_to_service_class(sop_class) is not StorageServiceClass:
        raise UserError(f"{path}: {sop_class.name} is not a storage SOP class", field="files")
    return str(sop_class), str(syntax)


def _visible(folder: Path) -> list[Path]:
    """The sub-folders of `folder` in name order (oldest item first), leaving out hidden drafts."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _item_folders(items: Sequence[Path] | None) -> list[Path]:
    if items is not None:
        return [Path(item) for item in items]
    return [folder for dest_folder in _visible(outbox_dir()) for folder in _visible(dest_folder)]


def _claim(folder: Path, now: datetime, locks: ExitStack) -> OutboxItem | None:
    """The item's state, locked for this run, when it is due; None when it is not, or another sender holds it."""
    if not locks.enter_context(_try_lock(folder)):
        return None
    state = read_item(folder)  # read under the lock: another sender may just have sent it
    if state.state != "queued" or state.next_attempt is None or state.next_attempt > now:
        return None
    return state


@contextmanager
def _try_lock(folder: Path) -> Iterator[bool]:
    with (folder / LOCK_NAME).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the file releases the lock


def _by_destination(due: list[tuple[Path, OutboxItem]]) -> dict[str, list[tuple[Path, OutboxItem]]]:
    groups: dict[str, list[tuple[Path, OutboxItem]]] = {}
    for folder, state in due:
        groups.setdefault(state.destination, []).append((folder, state))
    return groups


def _send_group(
    destination_text: str, group: list[tuple[Path, OutboxItem]], now: datetime, settings: Settings
) -> list[ItemView]:
    """Send a destination's due items over one association, recording each item's outcome."""
    from pynetdicom import AE, evt

    destination = parse_destination(destination_text)
    ae = AE(ae_title=CALLING_AE_TITLE)
    ae.connection_timeout = CONNECT_TIMEOUT_S
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = RESPONSE_TIMEOUT_S
    for sop_class, syntax in sorted({_storage_header(folder / name) for folder, item in group for name in item.files}):
        ae.add_requested_context(sop_class, syntax)
    connected: list[bool] = []
    assoc = ae.associate(
        destination.host,
        destination.port,
        ae_title=destination.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: connected.append(True))],
    )
    if not assoc.is_established:
        error = _association_error(assoc, bool(connected), destination)
        return [_record(folder, item, ("queued", error), now, settings) for folder, item in group]
    try:
        return [_record(folder, item, _send_item(assoc, folder, item), now, settings) for folder, item in group]
    finally:
        if assoc.is_established:
            assoc.release()


def _association_error(assoc: Association, connected: bool, destination: Destination) -> str:
    if not connected:
        return f"cannot connect to {destination.host}:{destination.port}"
    if assoc.is_rejected:
        return f"{destination} rejected the association"
    return f"{destination} aborted the association"


def _send_item(assoc: Association, folder: Path, item: OutboxItem) -> tuple[State, str | None]:
    """C-STORE the item's files not yet delivered: the outcome and its error (None when all were stored)."""
    from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS, code_to_category

    for name in [name for name in item.files if name not in item.delivered]:
        if not assoc.is_established:
            return "queued", f"{name}: the association was lost"
        try:
            status = assoc.send_c_store(folder / name)
        except ValueError as exc:  # no presentation context accepted for the file's SOP class and transfer syntax
            return "failed", f"{name}: {exc}"
        if "Status" not in status:
            return "queued", f"{name}: no response (connection lost or timed out)"
        code = int(status.Status)
        if code_to_category(code) not in ("Success", "Warning"):
            meaning = STORAGE_SERVICE_CLASS_STATUS.get(code, ("", "unknown status"))[1]
            return "failed", f"{name}: refused with status 0x{code:04X} ({meaning})"
        item.delivered.append(name)
    return "sent", None


def _record(
    folder: Path, item: OutboxItem, outcome: tuple[State, str | None], now: datetime, settings: Settings
) -> ItemView:
    """Write the item's new state; a sent item's copies are removed, a queued one waits twice as long as before."""
    state, error = outcome
    item.attempts += 1
    item.state, item.last_error = state, error
    item.next_attempt = None
    if state == "sent":
        item.sent_at = now
    elif state == "queued":
        wait = min(settings.dicom_send_retry_s * 2 ** (item.attempts - 1), settings.dicom_send_retry_max_s)
        item.next_attempt = now + timedelta(seconds=wait)
        log.warning("DICOM send to %s failed (%s); retry in %d s", item.destination, error, wait)
    else:
        log.error("DICOM send to %s failed for good: %s", item.destination, error)
    write_json_atomic(folder / STATE_JSON, item.model_dump(mode="json"))
    if state == "sent":
        for name in item.files:
            (folder / name).unlink(missing_ok=True)
    return _view(folder, item)


def _view(folder: Path, item: OutboxItem) -> ItemView:
    return ItemView(item=str(folder), **item.model_dump())
