"""Diagnosis jobs of uploaded cases, run on the study queue (diagnosis/queue.py).

An upload becomes a job and a queued study of its case in one transaction (`create_job`); each job
owns its folder: <data>/jobs/<id>/job-<id>-<random> holds the upload (its study's case), /report the
report, options.json the upload's choices. A raw study's case, which `diagnose` ingests into
NEUROTRIAGE_HOME/cases/<the upload folder's name>, is removed when its job fails. The server's JobRunner
threads are queue workers that claim only the studies of jobs, through the same lease and fence as
`neurotriage worker`: live stage progress (ingest's stages too) is kept in memory, so progress never
waits on the database, and the write gate is held around the one transaction that stores a diagnosis,
never while it segments or renders its report.
The job row records the final stage timings and the outcome.

A separate `neurotriage worker` may claim a job's study too, and a server that stopped mid-job leaves
its claim to run out for the next claim to take over; until a server thread records a job's end, the
job's state is read from its study (`job_state`), so a reloaded page shows the truth either way.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from neurotriage.clinical import intake, validate
from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Finding, Study, utcnow
from neurotriage.diagnosis.batch import diagnose_claimed
from neurotriage.diagnosis.pipeline import DiagnoseOptions
from neurotriage.diagnosis.queue import Claim, QueueSettings, claim, db_now, enqueue, release, worker_name
from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.errors import NotFound, UserError
from neurotriage.files import write_json_atomic
from neurotriage.imaging.io import CaseFiles
from neurotriage.web.models import Job
from neurotriage.web.uploads import extract_study, job_error, new_case_folder, study_date, upload_digest
from neurotriage.web.write_gate import WriteGate

log = logging.getLogger(__name__)


class JobTimer(StageTimer):
    """A quiet StageTimer that publishes each stage's start and end to the live progress board."""

    def __init__(self, board: ProgressBoard, job_id: int) -> None:
        super().__init__(quiet=True)
        self.board = board
        self.job_id = job_id

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Mark the stage running, time it, then mark it done with its duration."""
        self.board.set_stage(self.job_id, name, "running", None)
        try:
            with super().stage(name):
                yield
        except BaseException:
            self.board.set_stage(self.job_id, name, "failed", None)
            raise
        self.board.set_stage(self.job_id, name, "done", self.timings[name])


class ProgressBoard:
    """Thread-safe live stage lists of the running jobs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[int, list[dict[str, Any]]] = {}

    def set_stage(self, job_id: int, name: str, state: str, seconds: float | None) -> None:
        """Add or update one stage of a job."""
        with self._lock:
            stages = self._stages.setdefault(job_id, [])
            row = next((s for s in stages if s["name"] == name), None)
            if row is None:
                stages.append(row := {"name": name})
            row.update(state=state, seconds=seconds)

    def stages(self, job_id: int) -> list[dict[str, Any]] | None:
        """A copy of the job's live stages, None when it is not running here."""
        with self._lock:
            found = self._stages.get(job_id)
            return [dict(s) for s in found] if found is not None else None

    def pop(self, job_id: int) -> list[dict[str, Any]]:
        """Forget a finished job's live stages, returning them."""
        with self._lock:
            return self._stages.pop(job_id, [])


OPTIONS_FILE = "options.json"  # in the job's folder: the upload's choices that shape its diagnosis
JOB_STUDIES = exists().where(Job.study_id == Study.id)  # the studies a server's threads claim
END_STATES = {"ok": "done", "parked": "failed", "failed": "queued"}  # a study's outcome as its job's status


@dataclass(frozen=True)
class JobState:
    """Where a job stands: its status, and its finding or error once it has ended."""

    status: str
    finding_id: int | None = None
    error: str | None = None


def job_state(session: Session, job: Job) -> JobState:
    """The job's state: its row once a server thread recorded its end (and for a job from before the
    study queue); otherwise its study's, which any worker may have moved on: done with the study's
    finding, failed once the study is parked, running while a claim on it holds, else queued."""
    study = session.get(Study, job.study_id) if job.study_id is not None else None
    if job.status in ("done", "failed") or study is None:
        return JobState(job.status, job.finding_id, job.error)
    finding_id = session.scalar(select(Finding.id).where(Finding.study_id == study.id).order_by(Finding.id.desc()))
    if finding_id is not None:
        return JobState("done", finding_id)
    if study.parked_at is not None:
        return JobState("failed", error=job_error(study.last_error or "failed", Path(study.case_ref), job.upload_name))
    if study.claim_token is not None and study.lease_until >= db_now(session):
        return JobState("running")
    return JobState("queued")


class JobRunner:
    """Threads that claim the studies of jobs from the queue, diagnose them and record the outcome on
    the job rows; a submitted job wakes them, and they look for work every `poll_s` seconds anyway."""

    def __init__(
        self, url: str, workers: int, gate: WriteGate, settings: QueueSettings | None = None, poll_s: float = 2.0
    ) -> None:
        self.url = url
        self.gate = gate
        self.settings = settings or QueueSettings()
        self.poll_s = poll_s
        self.board = ProgressBoard()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._work, name=f"diagnose-{i}") for i in range(workers)]

    def recover(self) -> int:
        """Mark jobs from before the study queue that a previous server process left queued or running
        as failed (they have no study to resume); returns how many. Jobs with a study wait on the queue."""
        with self.gate.held(), transaction(self.url) as session:
            result = session.execute(
                update(Job)
                .where(Job.status.in_(("queued", "running")), Job.study_id.is_(None))
                .values(status="failed", error="interrupted: the server stopped before the job finished")
            )
            return result.rowcount or 0

    def start(self) -> None:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Tell idle threads that a job was queued."""
        self._wake.set()

    def shutdown(self) -> None:
        """Stop claiming and wait for the running jobs; queued ones wait on the queue for the next start."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def live(self, session: Session, job: Job) -> dict[str, Any]:
        """The job as JSON, with the live stages while this server runs it."""
        state = job_state(session, job)
        stages = self.board.stages(job.id)
        return {
            "id": job.id,
            "patient_id": job.patient_id,
            "status": state.status,
            "upload": job.upload_name,
            "stages": stages if stages is not None else job.stages,
            "finding_id": state.finding_id,
            "error": state.error,
            "report_url": f"/reports/{state.finding_id}" if state.finding_id else None,
        }

    def _work(self) -> None:
        worker = f"{worker_name()}/{threading.current_thread().name}"
        while not self._stop.is_set():
            self._wake.clear()  # before claiming: a job queued after this claim wakes the wait below
            try:
                with self.gate.held():
                    claimed = claim(self.settings, worker, self.url, where=JOB_STUDIES)
                if claimed is not None:
                    self._run(claimed)
                    continue
            except Exception:  # the database may be down for a while: log, wait, look again
                log.exception("job queue: claiming or recording a job failed")
            self._wake.wait(self.poll_s)

    def _update(self, job_id: int, **values: Any) -> None:
        with self.gate.held(), transaction(self.url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))

    def _run(self, claimed: Claim) -> None:
        with self.gate.held(), transaction(self.url) as session:
            job = session.scalar(select(Job).where(Job.study_id == claimed.study_id))
            found = (job.id, Path(job.work_dir), job.upload_name) if job is not None else None
        if found is None:  # the job was deleted since the claim
            release(claimed)
            return
        job_id, work, upload = found
        options = job_options(work, self.url)
        row = diagnose_claimed(claimed, options, self.settings, JobTimer(self.board, job_id), self.gate.held)
        status = END_STATES.get(row["status"])  # a lost claim's study is another worker's now: no update
        try:
            if row["status"] == "parked":  # a study queued again is re-ingested by its next claim
                drop_ingested(Path(claimed.case_ref))
            if status is not None:
                error = job_error(row["error"], Path(claimed.case_ref), upload) if row["status"] == "parked" else None
                stages = self.board.stages(job_id)
                self._update(job_id, status=status, error=error, finding_id=row.get("finding_id"), stages=stages)
        finally:
            self.board.pop(job_id)  # after the row has the stages, so a reader always finds them


def job_options(work: Path, url: str) -> DiagnoseOptions:
    """How the job in `work` is diagnosed: its report in work/report, with the choices made at upload."""
    path = work / OPTIONS_FILE
    chosen = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    accept = chosen.get("accept_patient_mismatch") is True
    return DiagnoseOptions(out_dir=work / "report", url=url, accept_patient_mismatch=accept, fhir=True)


def drop_ingested(upload: Path) -> None:
    """Remove what ingesting the job's raw study at `upload` left in NEUROTRIAGE_HOME/cases (the case and
    its quality-gate figure, named after it): a failed job leaves no patient data outside its folder."""
    case = raw_case_dir(upload)
    shutil.rmtree(case, ignore_errors=True)
    for leftover in case.parent.glob(f"{case.name}_*") if case.parent.is_dir() else ():
        leftover.unlink(missing_ok=True)


def get_job(session: Session, job_id: int) -> Job:
    """The job with this id, or a UserError."""
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id}: no such job", field="job_id")
    return job


def duplicates(session: Session, job: Job) -> tuple[list[int], int]:
    """Other jobs of the same uploaded file: the ids of the patient's own, and how many of other patients'
    (counted only: they may be outside the reader's care team)."""
    if job.upload_sha256 is None:
        return [], 0
    rows = session.execute(
        select(Job.id, Job.patient_id).where(Job.upload_sha256 == job.upload_sha256, Job.id != job.id).order_by(Job.id)
    ).all()
    return [i for i, pid in rows if pid == job.patient_id], sum(1 for _, pid in rows if pid != job.patient_id)


def _failed(session: Session, job: Job, action: str) -> Study:
    """The failed job's study; a UserError naming why the action cannot be taken otherwise."""
    status = job_state(session, job).status
    if status != "failed":
        raise UserError(f"job {job.id}: only a failed job can be {action}; it is {status}", field="job_id")
    study = session.get(Study, job.study_id) if job.study_id is not None else None
    if study is None and action == "retried":
        raise UserError(f"job {job.id}: it has no queued study to run again; upload the study again", field="job_id")
    return study


def retry_job(session: Session, job: Job) -> None:
    """Queue a failed job's study again with its upload, with all its attempts; the caller wakes the runner
    once the transaction has committed."""
    study = _failed(session, job, "retried")
    if not Path(study.case_ref).is_dir():
        raise UserError(f"job {job.id}: its upload is gone; upload the study again", field="job_id")
    study.parked_at, study.attempts = None, 0  # parking let go of its claim
    enqueue(session, study)
    job.status, job.error, job.finding_id, job.stages, job.updated_at = "queued", None, None, [], utcnow()


def delete_job(session: Session, job: Job) -> None:
    """Delete a failed job with its study, its folder (the upload) and what ingesting it left in the cases
    folder; the rows go first, so a folder that cannot be removed rolls the deletion back."""
    study = _failed(session, job, "deleted")
    work = Path(job.work_dir) if job.work_dir and Path(job.work_dir).exists() else None
    if work is not None and (work.name != str(job.id) or work.parent.name != "jobs"):
        raise UserError(f"job {job.id}: its folder is not in a jobs folder; nothing was deleted", field="job_id")
    session.delete(job)
    if study is not None:
        session.delete(study)
    session.flush()
    if study is not None:
        drop_ingested(Path(study.case_ref))
    if work is not None:
        shutil.rmtree(work)


def create_job(
    session: Session,
    data_dir: Path,
    patient_id: int,
    user_id: int | None,
    name: str,
    stream: BinaryIO,
    entries: list,
    accept_patient_mismatch: bool = False,
    taken: str | None = None,
) -> tuple[Job, CaseFiles | None]:
    """Add a job for the patient, unpack its checked upload (`check_zip`'s entries) into the job's folder
    and queue the upload's study, dated by its DICOM StudyDate or else `taken` (YYYY-MM-DD); returns the job
    and the upload's BraTS case (None for a raw study). The caller wakes the runner once the transaction has
    committed."""
    typed = intake.checked("study_date", validate.iso_date, taken)
    intake.get_patient(session, patient_id)
    job = Job(patient_id=patient_id, user_id=user_id, upload_name=name[:300], work_dir="", stages=[])
    session.add(job)
    session.flush()  # the job id names its folder
    work = data_dir / "jobs" / str(job.id)
    job.work_dir = str(work)
    try:
        job.upload_sha256 = upload_digest(stream)
        folder = new_case_folder(work)
        case = extract_study(name, stream, entries, data_dir / "staging", folder)
        write_json_atomic(work / OPTIONS_FILE, {"accept_patient_mismatch": accept_patient_mismatch})
        study = intake.study_for(session, patient_id, str(folder), study_date(folder, name, typed))
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    enqueue(session, study)
    job.study_id = study.id
    return job, case
