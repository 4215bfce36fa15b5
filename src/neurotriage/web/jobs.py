"""Background diagnosis jobs: a thread pool, per-stage progress, state kept in the database.

Each job owns its folder (<data>/jobs/<id>/case and /report) and diagnose() runs its own
transactions, so two jobs never share files or a session. The write gate is held around the one
transaction that stores a diagnosis, never while it segments or renders its report. Live stage
progress is kept in memory, so progress never waits on the database. The job row records the
start, the final stage timings and the outcome, so a reloaded page (or a restarted server) shows
the truth.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import utcnow
from neurotriage.diagnosis.pipeline import DiagnoseOptions, diagnose
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.errors import UserError
from neurotriage.imaging.io import CaseFiles
from neurotriage.web.models import Job
from neurotriage.web.uploads import extract_case, job_error
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
        with super().stage(name):
            yield
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


class JobRunner:
    """Runs diagnoses in a small thread pool and records their outcome on the job rows."""

    def __init__(self, url: str, workers: int, gate: WriteGate) -> None:
        self.url = url
        self.gate = gate
        self.board = ProgressBoard()
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="diagnose")

    def recover(self) -> int:
        """Mark jobs left queued or running by a previous server process as failed; returns how many."""
        with self.gate.held(), transaction(self.url) as session:
            result = session.execute(
                update(Job)
                .where(Job.status.in_(("queued", "running")))
                .values(status="failed", error="interrupted: the server stopped before the job finished")
            )
            return result.rowcount or 0

    def submit(self, job_id: int) -> None:
        """Queue a stored job."""
        self.pool.submit(self._run, job_id)

    def shutdown(self) -> None:
        """Stop taking jobs and wait for the running ones."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def live(self, job: Job) -> dict[str, Any]:
        """The job as JSON, with the live stages while it runs."""
        stages = self.board.stages(job.id) if job.status == "running" else None
        return {
            "id": job.id,
            "patient_id": job.patient_id,
            "status": job.status,
            "upload": job.upload_name,
            "stages": stages if stages is not None else job.stages,
            "finding_id": job.finding_id,
            "error": job.error,
            "report_url": f"/reports/{job.finding_id}" if job.finding_id else None,
        }

    def _update(self, job_id: int, **values: Any) -> None:
        with self.gate.held(), transaction(self.url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(updated_at=utcnow(), **values))

    def _run(self, job_id: int) -> None:
        with transaction(self.url) as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
            work, patient_id = Path(job.work_dir), job.patient_id
        self._update(job_id, status="running")
        timer = JobTimer(self.board, job_id)
        try:
            options = DiagnoseOptions(out_dir=work / "report", url=self.url)
            result = diagnose(work / "case", patient_id, options, timer, write_lock=self.gate.held)
        except UserError as exc:
            error = job_error(str(exc), work, job.upload_name)
            self._update(job_id, status="failed", error=error, stages=self.board.pop(job_id))
        except Exception as exc:  # a bug must fail the job visibly, not kill the worker thread
            log.exception("job %s failed", job_id)
            error = job_error(f"internal error: {exc}", work, job.upload_name)
            self._update(job_id, status="failed", error=error, stages=self.board.pop(job_id))
        else:
            self._update(job_id, status="done", finding_id=result["finding_id"], stages=self.board.pop(job_id))


def get_job(session: Session, job_id: int) -> Job:
    """The job with this id, or a UserError."""
    job = session.get(Job, job_id)
    if job is None:
        raise UserError(f"job {job_id}: no such job", field="job_id")
    return job


def create_job(
    session: Session, data_dir: Path, patient_id: int, user_id: int | None, name: str, stream: BinaryIO, entries: list
) -> tuple[Job, CaseFiles]:
    """Add a queued job for the patient and unpack its checked upload (`check_zip`'s entries) into the
    job's folder; the caller submits the job once the transaction has committed."""
    intake.get_patient(session, patient_id)
    job = Job(patient_id=patient_id, user_id=user_id, upload_name=name[:300], work_dir="", stages=[])
    session.add(job)
    session.flush()  # the job id names its folder
    work = data_dir / "jobs" / str(job.id)
    job.work_dir = str(work)
    try:
        case = extract_case(name, stream, entries, data_dir / "staging", work / "case")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return job, case
