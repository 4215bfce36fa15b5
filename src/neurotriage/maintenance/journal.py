"""The pending-erasure journal: what an erasure removes after its transaction commits, kept until it has.

An erasure writes its journal to NEUROTRIAGE_HOME/erasures/<token>.json before its transaction commits,
and the transaction adds a tombstone audit event carrying the same token. Once committed, the listed
paths are removed, lines naming the erased studies leave the DICOM node's event log, a SQLite
database is compacted (`compact_database`: its free pages and log still hold copies of the erased
rows), and the journal goes. A journal left behind by a killed run is finished by
`finish_pending` when its tombstone is in the database, and discarded when it is not (the transaction
never committed, so nothing was erased). Erasures and `finish_pending` take turns on a lock file.
"""

from __future__ import annotations

import fcntl
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical.db import engine_for, transaction
from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.files import write_json_atomic, write_text_atomic
from neurotriage.maintenance.patient_files import OnFile, remove_paths
from neurotriage.pacs.inbox import events_file
from neurotriage.web.models import AuditEvent

FOLDER = "erasures"
LOCK_NAME = ".lock"
TOMBSTONE_ACTION = "erase"


@dataclass(frozen=True)
class Actor:
    """Who erases, as the tombstone names them: a web user with their id, or a person at the command line."""

    username: str
    user_id: int | None = None


class Journal(BaseModel):
    """An erasure's token (also in its tombstone), its target ("patient:<id>" or "study:<id>"), the paths to
    remove and the StudyInstanceUIDs whose event-log lines go."""

    token: str
    target: str
    paths: list[str]
    study_uids: list[str]


class Finished(BaseModel):
    """What finishing one journal did: removed the files of a committed erasure, or discarded the journal of
    one that never committed. `complete` is False while the database could not be compacted yet."""

    target: str
    outcome: Literal["finished", "discarded"]
    files: int = 0
    bytes: int = 0
    complete: bool = True


def journal_folder() -> Path:
    """NEUROTRIAGE_HOME/erasures."""
    return load_settings().home / FOLDER


@contextmanager
def erasure_lock(wait: bool = True) -> Iterator[bool]:
    """Hold the erasures' lock for a block (released when the process dies, too); yields False instead of
    waiting when `wait` is False and another process holds it."""
    folder = journal_folder()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def write_journal(journal: Journal) -> Path:
    """Write the journal durably (before the erasure's transaction commits); returns its path."""
    return write_json_atomic(journal_folder() / f"{journal.token}.json", journal.model_dump())


def tombstone(journal: Journal, patient_id: int, actor: Actor, counts: dict[str, int]) -> AuditEvent:
    """The audit event that records an erasure: who erased which record, when, and how much; no identity."""
    detail: dict[str, Any] = {"erasure": journal.token} | counts
    return AuditEvent(
        user_id=actor.user_id,
        username=actor.username,
        action=TOMBSTONE_ACTION,
        target=journal.target,
        detail=detail,
        patient_id=patient_id,
    )


def committed(session: Session, journal: Journal) -> bool:
    """Whether the journal's erasure committed: its tombstone is in the database."""
    details = session.scalars(
        select(AuditEvent.detail).where(AuditEvent.action == TOMBSTONE_ACTION, AuditEvent.target == journal.target)
    )
    return any((detail or {}).get("erasure") == journal.token for detail in details)


def finish(journal: Journal, path: Path, url: str | None = None, on_file: OnFile | None = None) -> Finished:
    """Complete a committed erasure: remove its paths, drop its event-log lines, compact the database, then
    remove the journal at `path` (kept while the database was busy, to try again)."""
    files, size = remove_paths([Path(p) for p in journal.paths], on_file)
    drop_event_lines(journal.study_uids)
    complete = compact_database(url)
    if complete:
        path.unlink(missing_ok=True)
    return Finished(target=journal.target, outcome="finished", files=files, bytes=size, complete=complete)


def finish_pending(url: str | None = None) -> list[Finished] | None:
    """Finish or discard every journal left behind; None when an erasure is running now (left to it)."""
    with erasure_lock(wait=False) as locked:
        if not locked:
            return None
        done = []
        for path in sorted(journal_folder().iterdir()):
            if path.name.startswith("."):  # the lock, or a journal's draft: its erasure never reached its commit
                if path.name != LOCK_NAME:
                    path.unlink()
                continue
            journal = _read(path)
            with transaction(url) as session:
                went = committed(session, journal)
            if went:
                done.append(finish(journal, path, url))
            else:
                path.unlink()
                done.append(Finished(target=journal.target, outcome="discarded"))
        return done


def _read(path: Path) -> Journal:
    try:
        return Journal.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError) as exc:
        raise UserError(f"erasure journal {path}: unreadable ({str(exc).splitlines()[0]})") from None


def drop_event_lines(study_uids: list[str]) -> int:
    """Rewrite the DICOM node's event log without the lines naming any of `study_uids`; how many went."""
    path = events_file()
    if not study_uids or not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if not any(uid in line for uid in study_uids)]
    if len(kept) < len(lines):
        write_text_atomic(path, "".join(kept))
    return len(lines) - len(kept)


def compact_database(url: str | None = None) -> bool:
    """On SQLite, rebuild the database file from its live rows (VACUUM: the free space where deleted rows,
    and older copies of updated ones, lay is gone) and truncate the write-ahead log, which holds copies of
    them too; False when another connection kept it busy. Other databases: nothing to do."""
    engine = engine_for(url)
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM")
        busy, _frames, _moved = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except sqlite3.OperationalError:  # locked by another writer past the busy timeout
        return False
    finally:
        raw.close()
    return busy == 0
