"""Erasing a patient, or one study, with everything derived from it.

One transaction deletes the rows: studies, findings, cross-checks, referrals, reviews, jobs (and for a
patient their symptoms and care-team grants), blanks the details of the audit events about them (a
patient's summary, a search for their name, an upload's file name), and adds a tombstone event that
says who erased which record id and when. Before it commits, the files to remove are written to the
pending-erasure journal (`journal.py`); after it commits they go: report folders, the case folders
inside neurotriage's own folders (uploads, received and pulled DICOM, ingested and synthetic cases),
job folders and outbox items holding the studies' DICOM objects. A case folder outside them is the
user's own input and stays, as does any folder another study still uses.

On SQLite the database file is then rebuilt from its live rows and its write-ahead log truncated, so
neither keeps a copy of what was deleted.
"""

from __future__ import annotations

import json
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Text, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from neurotriage.clinical.db import CommitUnknown, transaction
from neurotriage.clinical.intake import MAX_ROW_ID, get_patient
from neurotriage.clinical.models import (
    CrossCheckRecord,
    Finding,
    Patient,
    PatientSymptom,
    ReferralRecord,
    Review,
    Study,
)
from neurotriage.config import load_settings
from neurotriage.diagnosis.queue import db_now
from neurotriage.errors import NotFound, UserError
from neurotriage.faults import fault_point
from neurotriage.maintenance.journal import (
    TOMBSTONE_ACTION,
    Actor,
    Journal,
    erasure_lock,
    finish,
    tombstone,
    write_journal,
)
from neurotriage.maintenance.patient_files import (
    OnFile,
    OwnFolders,
    case_path,
    ingest_outputs,
    outermost,
    own_folders,
    tree_stats,
)
from neurotriage.maintenance.sweep import report_key
from neurotriage.pacs.inbox import inbox_root
from neurotriage.pacs.pull import pulled_root
from neurotriage.pacs.send import outbox_dir
from neurotriage.web.models import AuditEvent, Job, PatientAccess

Kind = Literal["patient", "study"]
WriteLock = Callable[[], AbstractContextManager[Any]]
NOUNS = (("study", "studies"), ("finding", "findings"), ("review", "reviews"), ("job", "jobs"))
DICOM_IDS = ("StudyInstanceUID", "PatientID", "IssuerOfPatientID")
MIN_SCRUB_TERM = 4  # identifying text shorter than this (a 3-digit MRN) is too common to search the audit log for


class ErasurePlan(BaseModel):
    """What an erasure removes, for the confirmation; the patient's name is shown there and never stored."""

    target: str  # "patient:<id>" or "study:<id>"
    patient_id: int
    patient_name: str
    studies: int
    findings: int
    reviews: int
    jobs: int
    paths: list[str]
    files: int
    bytes: int


class ErasureResult(BaseModel):
    """What an erasure removed; `complete` is False while the database could not be compacted yet."""

    target: str
    studies: int
    findings: int
    reviews: int
    jobs: int
    files: int
    bytes: int
    complete: bool


def counted(done: ErasurePlan | ErasureResult) -> str:
    """The records an erasure removes, in words: '2 studies, 1 finding, 0 reviews, 1 job'."""
    numbers = (done.studies, done.findings, done.reviews, done.jobs)
    return ", ".join(f"{n} {one if n == 1 else many}" for n, (one, many) in zip(numbers, NOUNS, strict=True))


@dataclass
class _Scope:
    """The rows an erasure deletes, locked in its transaction."""

    kind: Kind
    patient: Patient
    studies: list[Study]
    findings: list[Finding]
    jobs: list[Job]
    reviews: int

    @property
    def target(self) -> str:
        return f"patient:{self.patient.id}" if self.kind == "patient" else f"study:{self.studies[0].id}"

    def counts(self) -> dict[str, int]:
        return {
            "studies": len(self.studies),
            "findings": len(self.findings),
            "reviews": self.reviews,
            "jobs": len(self.jobs),
        }


def plan_erasure(
    kind: Kind,
    record_id: int,
    url: str | None = None,
    data_dir: Path | None = None,
    write_lock: WriteLock | None = None,
) -> ErasurePlan:
    """What erasing patient or study `record_id` would remove (nothing is changed)."""
    with (write_lock or nullcontext)(), transaction(url) as session:
        scope = _scope(session, kind, record_id)
        paths, _uids = _files_of(session, scope, own_folders(data_dir))
    files, size = tree_stats(paths)
    return ErasurePlan(
        target=scope.target,
        patient_id=scope.patient.id,
        patient_name=scope.patient.name,
        paths=[str(p) for p in paths],
        files=files,
        bytes=size,
        **scope.counts(),
    )


def erase(
    kind: Kind,
    record_id: int,
    actor: Actor,
    url: str | None = None,
    data_dir: Path | None = None,
    write_lock: WriteLock | None = None,
    on_file: OnFile | None = None,
) -> ErasureResult:
    """Erase patient or study `record_id`: rows and audit details in one transaction, then the files
    (`on_file` is called after each). `write_lock` is held around the transaction (the web app's gate)."""
    with erasure_lock():
        journal, path, counts = _erase_rows(kind, record_id, actor, url, own_folders(data_dir), write_lock)
        fault_point("erase-committed")
        done = finish(journal, path, url, on_file)
    return ErasureResult(target=journal.target, files=done.files, bytes=done.bytes, complete=done.complete, **counts)


def _erase_rows(
    kind: Kind, record_id: int, actor: Actor, url: str | None, own: OwnFolders, write_lock: WriteLock | None
) -> tuple[Journal, Path, dict[str, int]]:
    """The transaction of an erasure, with its journal written before it commits (and removed if it fails);
    returns the journal, its path and the counts of rows erased."""
    written: list[Path] = []
    try:
        with (write_lock or nullcontext)(), transaction(url) as session:
            scope = _scope(session, kind, record_id)
            paths, uids = _files_of(session, scope, own)
            journal = Journal(token=uuid.uuid4().hex, target=scope.target, paths=list(map(str, paths)), study_uids=uids)
            written.append(write_journal(journal))
            files, size = tree_stats(paths)
            _scrub_audit(session, scope)
            _delete_rows(session, scope)
            session.add(tombstone(journal, scope.patient.id, actor, scope.counts() | {"files": files, "bytes": size}))
    except CommitUnknown:
        raise  # the journal stays: `finish_pending` learns from the tombstone whether the rows went
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return journal, written[0], scope.counts()


def _scope(session: Session, kind: Kind, record_id: int) -> _Scope:
    """The patient's or the study's rows, the studies locked; refused while one of them is being diagnosed."""
    if kind == "patient":
        patient = get_patient(session, record_id)
        studies = list(
            session.scalars(select(Study).where(Study.patient_id == patient.id).order_by(Study.id).with_for_update())
        )
    else:
        study = (
            session.scalar(select(Study).where(Study.id == record_id).with_for_update())
            if 0 < record_id <= MAX_ROW_ID
            else None
        )
        if study is None:
            raise NotFound(f"study {record_id}: no such study", field="study_id")
        patient, studies = session.get(Patient, study.patient_id), [study]
    _refuse_claimed(session, studies)
    study_ids = [s.id for s in studies]
    findings = list(session.scalars(select(Finding).where(Finding.study_id.in_(study_ids)).order_by(Finding.id)))
    finding_ids = [f.id for f in findings]
    whose = (
        Job.patient_id == patient.id
        if kind == "patient"
        else or_(Job.study_id.in_(study_ids), Job.finding_id.in_(finding_ids))
    )
    jobs = list(session.scalars(select(Job).where(whose).order_by(Job.id)))
    reviews = session.scalar(select(func.count(Review.id)).where(Review.finding_id.in_(finding_ids)))
    return _Scope(kind, patient, studies, findings, jobs, reviews)


def _refuse_claimed(session: Session, studies: list[Study]) -> None:
    """A study being diagnosed now would have its results written after the erasure: refuse until it ends."""
    now = db_now(session)
    for study in studies:
        if study.claim_token is not None and study.lease_until is not None and study.lease_until >= now:
            wait = int((study.lease_until - now).total_seconds())
            raise UserError(
                f"study {study.id} is being diagnosed by {study.claimed_by} now; erase it once that ends "
                f"(its claim lapses within {wait} s if that worker stopped)",
                field="study_id",
            )


def _files_of(session: Session, scope: _Scope, own: OwnFolders) -> tuple[list[Path], list[str]]:
    """The paths the erasure removes, and the StudyInstanceUIDs of its DICOM studies."""
    candidates = [*_report_folders(scope), *_case_folders(scope), *_job_folders(scope)]
    if scope.kind == "patient":  # the folder of the patient's reports in their default place (diagnosis.pipeline)
        candidates.append(load_settings().home / "reports" / f"patient-{scope.patient.id}")
    existing = [p for p in candidates if p.exists() or p.is_symlink()]
    uids = sorted(_study_uids(scope, existing))
    patient = scope.patient
    mrn = (patient.mrn, patient.mrn_issuer or "") if scope.kind == "patient" and patient.mrn else None
    existing += _outbox_items(uids, mrn)
    still_used = _KeptPaths(session, scope)
    paths = [p for p in outermost(existing) if _ours(p, scope, own) and not still_used.overlaps(p)]
    return paths, uids


def _ours(path: Path, scope: _Scope, own: OwnFolders) -> bool:
    """Whether an erasure may remove `path`: inside neurotriage's folders, or a report folder of its findings
    wherever it was written (its report.json names one of them)."""
    return own.hold(path) or report_key(path) in {f.key for f in scope.findings}


def _report_folders(scope: _Scope) -> Iterator[Path]:
    """The findings' report folders that hold one of their reports (or none yet), and their segmentations."""
    keys = {f.key for f in scope.findings}
    for finding in scope.findings:
        if finding.report_dir:
            folder = Path(finding.report_dir)
            if report_key(folder) in keys | {None}:
                yield folder
        if finding.segmentation_path:
            yield Path(finding.segmentation_path)


def _case_folders(scope: _Scope) -> Iterator[Path]:
    """Each study's case folder, and what ingesting it wrote to NEUROTRIAGE_HOME/cases."""
    for study in scope.studies:
        case = case_path(study.case_ref, study.synthetic_seed)
        yield case
        yield from ingest_outputs(case)


def _job_folders(scope: _Scope) -> Iterator[Path]:
    for job in scope.jobs:
        if job.work_dir:
            yield Path(job.work_dir)


def _study_uids(scope: _Scope, paths: list[Path]) -> set[str]:
    """The StudyInstanceUIDs of the studies: received and pulled folders are named by them, and every DICOM
    object of a report carries its source study's."""
    dicom_roots = {inbox_root().resolve(), pulled_root().resolve()}
    uids = {Path(s.case_ref).name for s in scope.studies if Path(s.case_ref).resolve().parent in dicom_roots}
    native = [p for folder in paths if folder.is_dir() for p in folder.glob("native/*.dcm")]
    return uids | {tags[0] for tags in map(_dicom_ids, native) if tags[0]}


def _dicom_ids(path: Path) -> tuple[str, str, str]:
    """(StudyInstanceUID, PatientID, IssuerOfPatientID) of a DICOM file, empty strings for what it lacks
    (all of them when it is not DICOM)."""
    import pydicom  # only where there is DICOM to read

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(DICOM_IDS))
    except (OSError, pydicom.errors.InvalidDicomError):
        return "", "", ""
    study_uid, patient_id, issuer = (str(ds.get(tag, "") or "") for tag in DICOM_IDS)
    return study_uid, patient_id, issuer


def _outbox_items(uids: list[str], mrn: tuple[str, str] | None) -> list[Path]:
    """The outbox items holding an object of one of the studies, or naming the patient's (MRN, issuer)."""
    root = outbox_dir()
    items = [item for dest in _folders(root) for item in _folders(dest)]
    return [item for item in items if any(_names_study(f, uids, mrn) for f in item.iterdir() if f.suffix == ".dcm")]


def _names_study(path: Path, uids: list[str], mrn: tuple[str, str] | None) -> bool:
    study_uid, patient_id, issuer = _dicom_ids(path)
    return bool(study_uid and study_uid in uids) or (patient_id, issuer) == mrn


def _folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


class _KeptPaths:
    """The case, report and job folders of the rows an erasure keeps, to leave any path one of them uses."""

    def __init__(self, session: Session, scope: _Scope) -> None:
        study_ids = [s.id for s in scope.studies]
        finding_ids = [f.id for f in scope.findings]
        job_ids = [j.id for j in scope.jobs]
        cases = session.execute(select(Study.case_ref, Study.synthetic_seed).where(Study.id.not_in(study_ids)))
        reports = session.execute(
            select(Finding.report_dir, Finding.segmentation_path).where(Finding.id.not_in(finding_ids))
        )
        jobs = session.scalars(select(Job.work_dir).where(Job.id.not_in(job_ids)))
        used = [case_path(ref, seed) for ref, seed in cases]
        used += [Path(p) for row in reports for p in row if p]
        used += [Path(p) for p in jobs if p]
        self._used = sorted({str(p.resolve()) for p in used})
        self._set = set(self._used)

    def overlaps(self, path: Path) -> bool:
        """Whether a kept row uses `path`, a path inside it, or a folder that holds it."""
        text = str(path)
        if any(str(parent) in self._set for parent in (path, *path.parents)):
            return True
        at = bisect_left(self._used, text + "/")
        return at < len(self._used) and self._used[at].startswith(text + "/")


def _delete_rows(session: Session, scope: _Scope) -> None:
    """Delete the scope's rows, children first (the same on both databases, whatever the foreign keys do)."""
    patient_id = scope.patient.id
    study_ids = [s.id for s in scope.studies]
    finding_ids = [f.id for f in scope.findings]
    checks = select(CrossCheckRecord.id).where(CrossCheckRecord.finding_id.in_(finding_ids))
    if scope.kind == "patient":
        crosschecks, referrals = CrossCheckRecord.patient_id == patient_id, ReferralRecord.patient_id == patient_id
    else:
        crosschecks = CrossCheckRecord.finding_id.in_(finding_ids)
        referrals = or_(ReferralRecord.finding_id.in_(finding_ids), ReferralRecord.crosscheck_id.in_(checks))
    statements = [
        delete(Review).where(Review.finding_id.in_(finding_ids)),
        delete(ReferralRecord).where(referrals),
        delete(CrossCheckRecord).where(crosschecks),
        delete(Job).where(Job.id.in_([j.id for j in scope.jobs])),
        delete(Finding).where(Finding.id.in_(finding_ids)),
        delete(Study).where(Study.id.in_(study_ids)),
    ]
    if scope.kind == "patient":
        statements += [
            delete(PatientSymptom).where(PatientSymptom.patient_id == patient_id),
            delete(PatientAccess).where(PatientAccess.patient_id == patient_id),
            delete(Patient).where(Patient.id == patient_id),
        ]
    for statement in statements:
        session.execute(statement.execution_options(synchronize_session=False))


def _scrub_audit(session: Session, scope: _Scope) -> None:
    """Blank the details of the audit events about the erased records (earlier tombstones keep theirs)."""
    session.execute(
        update(AuditEvent)
        .where(AuditEvent.action != TOMBSTONE_ACTION, AuditEvent.detail.is_not(None), or_(*_about(scope)))
        .values(detail=None)
        .execution_options(synchronize_session=False)
    )


def _about(scope: _Scope) -> list[ColumnElement[bool]]:
    """Conditions on audit events that concern the scope: its records by target, and for a patient every
    event with the patient's id or whose detail holds their name, MRN or birth date."""
    pid = scope.patient.id
    targets = [f"finding:{f.id}" for f in scope.findings] + [f"study:{s.id}" for s in scope.studies]
    targets += [name for j in scope.jobs for name in (f"job:{j.id}", f"patient:{pid}/job:{j.id}")]
    conditions = [AuditEvent.target.in_(targets)]
    if scope.kind == "patient":
        conditions += [AuditEvent.patient_id == pid, AuditEvent.target == f"patient:{pid}"]
        conditions.append(AuditEvent.target.startswith(f"patient:{pid}/", autoescape=True))
        detail = func.lower(cast(AuditEvent.detail, Text))
        conditions += [detail.contains(term, autoescape=True) for term in _identifying_terms(scope.patient)]
    return conditions


def _identifying_terms(patient: Patient) -> set[str]:
    """The patient's name, MRN and birth date in lower case, as typed and as JSON writes them."""
    values = [patient.name, patient.mrn, patient.birth_date.isoformat() if patient.birth_date else None]
    words = {v.strip().lower() for v in values if v and len(v.strip()) >= MIN_SCRUB_TERM}
    return words | {json.dumps(w)[1:-1] for w in words}
