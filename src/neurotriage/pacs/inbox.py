"""Where received DICOM instances live, and when a study is complete.

    NEUROTRIAGE_HOME/dicom/inbox/<StudyInstanceUID>/
        study.json                                   the study's state (`StudyState`), written atomically
        <SeriesInstanceUID>/<SOPInstanceUID>.dcm     each instance, as the sender encoded it

An instance is on the disk (written to a hidden sibling, flushed, renamed, folder flushed) before `store`
returns, so a sender that was told "success" never loses it. A study is complete once no instance has
arrived for `stable_s` seconds; it is then refused when it mixes patients, and otherwise handed on once
(`handed_on` in its state says whether it was). A listener that starts again picks up every study left
`receiving` or `complete` but not handed on, counting what is on the disk and restarting its quiet period.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from neurotriage.config import load_settings
from neurotriage.files import atomic_path, owner_alive, staged_entry, write_json_atomic

log = logging.getLogger("neurotriage.pacs")

STATE_NAME = "study.json"
INSTANCE_SUFFIX = ".dcm"
STATES = ("receiving", "complete", "queued", "diagnosed", "sent", "failed")
OPEN_STATES = ("receiving", "complete")  # instances arriving for such a study make it `receiving` again
PATIENT_TAGS = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
UID_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class InstanceRefused(ValueError):
    """An instance that cannot be filed (a UID missing or not a UID); the message is one line."""


@dataclass
class StudyState:
    """What the inbox knows of one study; `study.json` holds it as a JSON object with these keys."""

    study_uid: str
    state: str = "receiving"
    instances: int = 0
    series: dict[str, int] = field(default_factory=dict)  # instances per SeriesInstanceUID
    first_arrival: str | None = None  # ISO 8601, UTC
    last_arrival: str | None = None
    calling_aes: list[str] = field(default_factory=list)
    patient: dict[str, str] = field(default_factory=dict)  # PATIENT_TAGS of the first instance filed
    patient_ids: list[str] = field(default_factory=list)  # every distinct PatientID seen
    handed_on: bool = False
    error: str | None = None  # one line, when failed

    @classmethod
    def from_json(cls, payload: dict) -> StudyState:
        """The state a `study.json` object describes."""
        return cls(**payload)


CompleteCallback = Callable[[Path, StudyState], None]
_EVENTS_LOCK = threading.Lock()


def inbox_root() -> Path:
    """The inbox folder under NEUROTRIAGE_HOME."""
    return load_settings().home / "dicom" / "inbox"


def checked_uid(value: object, tag: str) -> str:
    """`value` as a UID safe to name a file or folder; InstanceRefused when it is missing or not a valid UID."""
    uid = UID(str(value or "").strip().rstrip("\0"))
    if not uid or not uid.is_valid:
        raise InstanceRefused(f"{tag} {str(value or '')[:80]!r} is not a valid UID")
    return str(uid)


def patient_tags(ds: Dataset) -> dict[str, str]:
    """The patient's identifying tags of an instance, as text ('' when absent)."""
    return {tag: str(ds.get(tag, "") or "") for tag in PATIENT_TAGS}


def read_state(study_dir: Path) -> StudyState | None:
    """The state saved in a study folder, None when it has none."""
    path = study_dir / STATE_NAME
    if not path.is_file():
        return None
    return StudyState.from_json(json.loads(path.read_text(encoding="utf-8")))


def write_state(study_dir: Path, state: StudyState) -> None:
    """Save a study's state atomically."""
    write_json_atomic(study_dir / STATE_NAME, asdict(state))


def events_file() -> Path:
    """The node's event log (rejected associations), one JSON object per line, beside the inbox."""
    return load_settings().home / "dicom" / "events.jsonl"


def record_event(kind: str, detail: str) -> None:
    """Append one event (`kind`: e.g. "rejected") to the node's event log, for the web app's DICOM page."""
    path = events_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"at": _now(), "kind": kind, "detail": detail})
    with _EVENTS_LOCK, open(path, "a", encoding="utf-8") as log_file:
        log_file.write(line + "\n")


def read_events(limit: int = 50) -> list[dict[str, str]]:
    """The newest `limit` events of the node's event log, newest first (a damaged line is skipped)."""
    try:
        lines = events_file().read_text(encoding="utf-8").splitlines()[-limit:]
    except FileNotFoundError:
        return []
    events = []
    for line in reversed(lines):
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def instance_files(study_dir: Path) -> Iterator[Path]:
    """Every instance filed in a study folder (hidden temporaries left out)."""
    for path in sorted(study_dir.glob(f"*/*{INSTANCE_SUFFIX}")):
        if not path.name.startswith("."):
            yield path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Inbox:
    """The received studies under `root`, thread-safe: each association stores from its own thread."""

    def __init__(self, root: Path, stable_s: float) -> None:
        self.root = root
        self.stable_s = stable_s
        self._lock = threading.Lock()
        self._studies: dict[str, StudyState] = {}
        self._quiet_since: dict[str, float] = {}  # monotonic time of the last arrival, per open study
        self._dirty: set[str] = set()  # studies whose counts changed since their state was written

    def study_dir(self, study_uid: str) -> Path:
        """The folder of a study."""
        return self.root / study_uid

    def store(self, ds: Dataset, encoded: bytes, calling_ae: str) -> bool:
        """File one instance durably (`encoded`: the DICOM file bytes); True when new, False for a duplicate
        (an instance already filed under its SOPInstanceUID is kept as it is)."""
        study_uid, series_uid, sop_uid = (checked_uid(ds.get(tag), tag) for tag in UID_TAGS)
        study_dir = self.study_dir(study_uid)
        path = study_dir / series_uid / f"{sop_uid}{INSTANCE_SUFFIX}"
        with self._lock:
            state = self._open(study_uid)
            new = not path.exists()
            if new:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(encoded)
                self._count(state, series_uid, ds, calling_ae)
            elif path.read_bytes() != encoded:
                log.warning(
                    "study %s: instance %s sent again with other bytes; the first copy is kept", study_uid, sop_uid
                )
            self._arrived(state, new)
        return new

    def _open(self, study_uid: str) -> StudyState:
        """The study's state in memory, read from its folder or started there."""
        state = self._studies.get(study_uid)
        if state is None:
            state = read_state(self.study_dir(study_uid)) or StudyState(study_uid, first_arrival=_now())
            self._studies[study_uid] = state
            write_state(self.study_dir(study_uid), state)
        return state

    def _count(self, state: StudyState, series_uid: str, ds: Dataset, calling_ae: str) -> None:
        """Add one new instance to the counts; the state is written now when more than its counts changed."""
        state.instances += 1
        changed = series_uid not in state.series
        state.series[series_uid] = state.series.get(series_uid, 0) + 1
        tags = patient_tags(ds)
        if not state.patient:
            state.patient, changed = tags, True
        if tags["PatientID"] not in state.patient_ids:
            state.patient_ids.append(tags["PatientID"])
            changed = True
        if calling_ae and calling_ae not in state.calling_aes:
            state.calling_aes.append(calling_ae)
            changed = True
        if changed:
            self._save(state)
        else:
            self._dirty.add(state.study_uid)

    def _arrived(self, state: StudyState, new: bool) -> None:
        """An instance arrived: an open study is receiving again and its quiet period starts over. A duplicate
        counts too, so a sender resending a whole study keeps it open until its last new instance."""
        state.last_arrival = _now()
        if state.state not in OPEN_STATES:
            if new:
                log.info("study %s is %s: a new instance is kept, its state is unchanged", state.study_uid, state.state)
            return
        if state.state != "receiving" and new:
            state.state = "receiving"
            self._save(state)
        if state.state == "receiving":
            self._quiet_since[state.study_uid] = time.monotonic()
            self._dirty.add(state.study_uid)

    def _save(self, state: StudyState) -> None:
        write_state(self.study_dir(state.study_uid), state)
        self._dirty.discard(state.study_uid)

    def recover(self) -> list[StudyState]:
        """Pick up the studies a stopped listener left open: counts and patients from the instances on the disk,
        a fresh quiet period. Returns them."""
        recovered = []
        for study_dir in sorted(p for p in self.root.glob("*") if p.is_dir() and not p.name.startswith(".")):
            state = read_state(study_dir)
            if state is not None and (state.state not in OPEN_STATES or state.handed_on):
                continue
            state = _rescanned(study_dir, state)
            state.state = "receiving"
            with self._lock:
                self._studies[state.study_uid] = state
                self._quiet_since[state.study_uid] = time.monotonic()
                self._save(state)
            recovered.append(state)
        return recovered

    def complete_due(self, on_complete: CompleteCallback) -> list[StudyState]:
        """Finish every study quiet for `stable_s` seconds: refuse it when it mixes patients, else mark it complete
        and hand it on (unless it was already); write the counts of the others. Returns the finished studies."""
        with self._lock:
            now = time.monotonic()
            due = [self._studies[uid] for uid, since in self._quiet_since.items() if now - since >= self.stable_s]
            for state in due:
                del self._quiet_since[state.study_uid]
                _settle(state)
                self._save(state)
            for uid in list(self._dirty):
                self._save(self._studies[uid])
        for state in due:
            if state.state == "complete" and not state.handed_on:
                self._hand_on(state, on_complete)
        return due

    def _hand_on(self, state: StudyState, on_complete: CompleteCallback) -> None:
        """Call the hand-off outside the lock (it may be slow); the study is marked handed on only once it
        returns, so a listener killed meanwhile hands it on at its next start. The callback may set
        `state.state` (e.g. to `queued`)."""
        try:
            on_complete(self.study_dir(state.study_uid), state)
        except Exception as exc:  # one failing study must not stop the listener
            state.state = "failed"
            state.error = f"hand-off failed: {type(exc).__name__}: {exc}".splitlines()[0]
            log.exception("study %s: %s", state.study_uid, state.error)
        else:
            state.handed_on = True
        with self._lock:
            self._save(state)

    def set_state(self, study_uid: str, state_name: str, error: str | None = None) -> None:
        """Record what became of a handed-on study (queued, diagnosed, sent, failed) and why, in memory and on disk."""
        if state_name not in STATES:
            raise ValueError(f"{state_name!r} is not a study state")
        with self._lock:
            state = self._studies.get(study_uid) or read_state(self.study_dir(study_uid))
            if state is None:
                raise ValueError(f"study {study_uid} is not in the inbox")
            self._studies[study_uid] = state
            state.state, state.error = state_name, error
            self._save(state)

    def flush(self) -> None:
        """Write the state of every study whose counts changed."""
        with self._lock:
            for uid in list(self._dirty):
                self._save(self._studies[uid])


def _settle(state: StudyState) -> None:
    """A quiet study's new state: failed when it mixes patients, else complete."""
    if len(state.patient_ids) > 1:
        first, second = state.patient_ids[:2]
        state.state = "failed"
        state.error = f"instances of two patients in one study (PatientID {first!r} and {second!r}); not diagnosed"
        log.error("study %s refused: %s", state.study_uid, state.error)
        return
    state.state = "complete"
    if state.handed_on:
        log.info(
            "study %s complete again: %d instances; already handed on, not again", state.study_uid, state.instances
        )


def _rescanned(study_dir: Path, saved: StudyState | None) -> StudyState:
    """The state of a study not handed on, rebuilt from its instances on the disk (keeping the arrival times
    and AE titles saved); temporaries of dead writers are removed."""
    _drop_dead_temporaries(study_dir)
    state = StudyState(study_dir.name, first_arrival=saved.first_arrival if saved else None)
    if saved is not None:
        state.calling_aes, state.last_arrival = saved.calling_aes, saved.last_arrival
    for path in instance_files(study_dir):
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(PATIENT_TAGS))
        state.instances += 1
        state.series[path.parent.name] = state.series.get(path.parent.name, 0) + 1
        tags = patient_tags(ds)
        state.patient = state.patient or tags
        if tags["PatientID"] not in state.patient_ids:
            state.patient_ids.append(tags["PatientID"])
    return state


def _drop_dead_temporaries(study_dir: Path) -> None:
    for path in study_dir.glob("**/.*"):
        staged = staged_entry(path)
        if staged is not None and path.is_file() and not owner_alive(staged):
            path.unlink(missing_ok=True)
