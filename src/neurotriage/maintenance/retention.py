"""Retention: how long raw studies and failed jobs' files are kept (NEUROTRIAGE_RETAIN_*_DAYS; unset: for good).

- Raw studies (NEUROTRIAGE_RETAIN_RAW_DAYS): the raw input of a diagnosed study inside neurotriage's own
  folders (a web upload, a received or pulled DICOM study) goes that many days after the study was
  recorded, once ingesting it left the BraTS case in NEUROTRIAGE_HOME/cases; the case and the report stay.
  A received or pulled DICOM study that no study row uses goes that many days after its last instance
  arrived, unless the listener has yet to hand it on.
- Failed jobs (NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS): a failed job's folder (its upload, options and any
  partial report) goes that many days after it failed.

Nothing that a study without a finding, a queued or a claimed study still uses is touched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session

from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Finding, Study
from neurotriage.config import load_settings
from neurotriage.diagnosis.queue import db_now
from neurotriage.maintenance.patient_files import (
    OnFile,
    OwnFolders,
    case_path,
    ingest_outputs,
    ingested_case,
    own_folders,
    remove_paths,
    tree_stats,
)
from neurotriage.pacs.inbox import OPEN_STATES, inbox_root, read_state
from neurotriage.pacs.pull import pulled_root
from neurotriage.web.models import Job

Rule = Literal["raw study", "received DICOM", "failed job"]
Found = Iterator[tuple[Rule, Path, str | None]]  # (rule, path, record) of what a rule removes


class RetentionItem(BaseModel):
    """One path a retention rule removes, with what it holds and the record it belonged to."""

    rule: Rule
    path: str
    files: int
    bytes: int
    record: str | None = None  # "study:<id>" or "job:<id>"; None for received DICOM filed under no study


class RetentionReport(BaseModel):
    """The rules in force and what they remove (`applied`: removed, else only found)."""

    raw_days: int | None
    failed_job_days: int | None
    items: list[RetentionItem]
    applied: bool = False

    @property
    def files(self) -> int:
        """Files in all items."""
        return sum(item.files for item in self.items)

    @property
    def bytes(self) -> int:
        """Bytes in all items."""
        return sum(item.bytes for item in self.items)


def retention_plan(url: str | None = None, data_dir: Path | None = None) -> RetentionReport:
    """What the retention rules would remove now (nothing is changed)."""
    settings = load_settings()
    own = own_folders(data_dir)
    found: list[tuple[Rule, Path, str | None]] = []
    with transaction(url) as session:
        now = db_now(session)
        needed = _needed(session, now)
        if settings.retain_raw_days is not None:
            cutoff = now - timedelta(days=settings.retain_raw_days)
            found += _raw_studies(session, now, cutoff, own)
            found += _received_unfiled(session, cutoff)
        if settings.retain_failed_job_days is not None:
            found += _failed_jobs(session, now, now - timedelta(days=settings.retain_failed_job_days), own)
    items = [_item(rule, path, record) for rule, path, record in found if not _overlaps(path, needed)]
    return RetentionReport(
        raw_days=settings.retain_raw_days, failed_job_days=settings.retain_failed_job_days, items=items
    )


def apply_retention(report: RetentionReport, on_file: OnFile | None = None) -> RetentionReport:
    """Remove what `report` found (`on_file` is called after each file); the report of what went."""
    items = []
    for item in report.items:
        files, size = remove_paths([Path(item.path)], on_file)
        items.append(item.model_copy(update={"files": files, "bytes": size}))
    return report.model_copy(update={"items": items, "applied": True})


def _item(rule: Rule, path: Path, record: str | None) -> RetentionItem:
    files, size = tree_stats([path])
    return RetentionItem(rule=rule, path=str(path), files=files, bytes=size, record=record)


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    return or_(Study.claim_token.is_(None), Study.lease_until < now)


def _diagnosed() -> ColumnElement[bool]:
    return exists().where(Finding.study_id == Study.id)


def _needed(session: Session, now: datetime) -> set[Path]:
    """The case folders of studies still to be diagnosed: without a finding and not parked, queued, or claimed."""
    waiting = or_(and_(~_diagnosed(), Study.parked_at.is_(None)), Study.queued_at.is_not(None), ~_unclaimed(now))
    rows = session.execute(select(Study.case_ref, Study.synthetic_seed).where(waiting))
    return {case_path(ref, seed).resolve() for ref, seed in rows}


def _overlaps(path: Path, needed: set[Path]) -> bool:
    """Whether `path` is, or holds, a folder that is still needed."""
    return any(folder == path or folder.is_relative_to(path) for folder in needed)


def _raw_studies(session: Session, now: datetime, cutoff: datetime, own: OwnFolders) -> Found:
    """The raw inputs of diagnosed studies recorded before `cutoff` whose BraTS case was ingested."""
    old = select(Study.id, Study.case_ref).where(
        Study.created_at < cutoff, Study.queued_at.is_(None), _unclaimed(now), _diagnosed()
    )
    for study_id, case_ref in session.execute(old.order_by(Study.id)):
        raw = Path(case_ref).resolve()
        if raw.exists() and own.hold(raw) and ingested_case(raw) is not None:
            yield "raw study", raw, f"study:{study_id}"


def _received_unfiled(session: Session, cutoff: datetime) -> Found:
    """Received or pulled DICOM studies no study row uses, whose last instance arrived before `cutoff` and
    that the listener need not hand on any more."""
    folders = [p for root in (inbox_root(), pulled_root()) if root.is_dir() for p in sorted(root.iterdir())]
    folders = [p.resolve() for p in folders if p.is_dir() and not p.name.startswith(".")]
    if not folders:
        return
    filed = {Path(ref).resolve() for ref in session.scalars(select(Study.case_ref))}
    for folder in folders:
        if folder not in filed and _settled_before(folder, cutoff):
            yield "received DICOM", folder, None


def _settled_before(folder: Path, cutoff: datetime) -> bool:
    """Whether a received study is no longer the listener's and its last instance arrived before `cutoff`."""
    try:
        state = read_state(folder)
    except (ValueError, TypeError):
        state = None  # a damaged state: judged by the folder's age alone
    if state is not None and state.state in OPEN_STATES and not state.handed_on:
        return False
    arrived = datetime.fromisoformat(state.last_arrival) if state and state.last_arrival else _modified(folder)
    return arrived.astimezone(UTC).replace(tzinfo=None) < cutoff


def _modified(folder: Path) -> datetime:
    """When anything in `folder` last changed."""
    times = [folder.stat().st_mtime, *(os.lstat(p).st_mtime for p in folder.rglob("*"))]
    return datetime.fromtimestamp(max(times), UTC)


def _failed_jobs(session: Session, now: datetime, cutoff: datetime, own: OwnFolders) -> Found:
    """The folders of jobs that failed before `cutoff` (and what ingesting their upload left), unless their
    study was queued again, is claimed or has a finding after all."""
    query = (
        select(Job.id, Job.work_dir, Job.updated_at, Study.parked_at, Study.case_ref)
        .outerjoin(Study, Study.id == Job.study_id)
        .where(
            or_(Job.status == "failed", Study.parked_at.is_not(None)),
            or_(Study.id.is_(None), and_(Study.queued_at.is_(None), _unclaimed(now), ~_diagnosed())),
        )
        .order_by(Job.id)
    )
    for job_id, work_dir, updated_at, parked_at, case_ref in session.execute(query):
        if (parked_at or updated_at) >= cutoff:
            continue
        paths = [Path(work_dir), *(ingest_outputs(Path(case_ref)) if case_ref else [])]
        for path in paths:
            if path.exists() and own.hold(path):
                yield "failed job", path.resolve(), f"job:{job_id}"
