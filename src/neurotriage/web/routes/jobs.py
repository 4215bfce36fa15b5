"""Upload a case zip for a patient, then follow its background diagnosis."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse

from neurotriage.clinical import intake
from neurotriage.errors import UserError
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import audit, db, require_user, settings
from neurotriage.web.models import Job, User
from neurotriage.web.render import page
from neurotriage.web.uploads import check_zip, extract_case

router = APIRouter(include_in_schema=False)
CurrentUser = Annotated[User, Depends(require_user)]


def get_job(session, job_id: int) -> Job:
    """The job with this id, or a UserError."""
    job = session.get(Job, job_id)
    if job is None:
        raise UserError(f"job {job_id}: no such job")
    return job


def _file_size(upload: UploadFile) -> int:
    upload.file.seek(0, 2)
    return upload.file.tell()


@router.post("/patients/{patient_id}/upload")
def upload_case(
    request: Request,
    user: CurrentUser,
    patient_id: int,
    case_zip: UploadFile,
    csrf_token: Annotated[str, Form()] = "",
):
    """Check and unpack a case zip into a new job's folder, queue its diagnosis, show the job."""
    check_csrf(request, csrf_token)
    conf = settings(request)
    name = Path(case_zip.filename or "upload.zip").name  # the client's path is never used
    entries = check_zip(name, case_zip.file, _file_size(case_zip), conf.max_upload_bytes)
    with db(request) as session:
        intake.get_patient(session, patient_id)
        job = Job(patient_id=patient_id, user_id=user.id, upload_name=name[:300], work_dir="", stages=[])
        session.add(job)
        session.flush()  # the job id names its folder
        work = conf.data_dir / "jobs" / str(job.id)
        job.work_dir = str(work)
        try:
            case = extract_case(name, case_zip.file, entries, conf.data_dir / "staging", work / "case")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        audit(session, user, "upload", f"patient:{patient_id}/job:{job.id}", {"file": name, "case": case.case_id})
    request.app.state.jobs.submit(job.id)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, user: CurrentUser, job_id: int):
    """The job's progress; the page polls /api/jobs/{id} until it ends."""
    with db(request) as session:
        job = request.app.state.jobs.live(get_job(session, job_id))
    return page(request, "job.html.j2", user, job=job)
