"""Upload a study zip (a BraTS case or a raw DICOM/NIfTI study) for a patient, then follow its background diagnosis;
retry or delete a failed one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import RedirectResponse

from neurotriage.web import access
from neurotriage.web.access import WriterUser
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import CurrentUser, SessionDep, audit, settings
from neurotriage.web.jobs import create_job, delete_job, duplicates, retry_job
from neurotriage.web.render import page
from neurotriage.web.uploads import check_zip

router = APIRouter(include_in_schema=False)


def _file_size(upload: UploadFile) -> int:
    upload.file.seek(0, 2)
    return upload.file.tell()


@router.post("/patients/{patient_id}/upload")
def upload_case(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    patient_id: int,
    case_zip: UploadFile,
    csrf_token: Annotated[str, Form()] = "",
    accept_patient_mismatch: Annotated[bool, Form()] = False,
    study_date: Annotated[str, Form()] = "",
):
    """Check and unpack a study zip into a new job's folder, queue its diagnosis, show the job.

    `accept_patient_mismatch` lets a raw study whose DICOM headers name another patient through; `study_date`
    (YYYY-MM-DD, optional) dates a study whose files carry no DICOM StudyDate."""
    check_csrf(request, csrf_token)
    with db() as session:  # refused before the zip is read
        access.require_patient(session, user, patient_id)
    conf = settings(request)
    name = Path(case_zip.filename or "upload.zip").name  # the client's path is never used
    entries = check_zip(name, case_zip.file, _file_size(case_zip), conf.max_upload_bytes)
    with db() as session:
        job, case = create_job(
            session, conf.data_dir, patient_id, user.id, name, case_zip.file, entries, accept_patient_mismatch,
            taken=study_date,
        )  # fmt: skip
        detail = {"file": name, "case": case.case_id if case else None, "accept_mismatch": accept_patient_mismatch}
        detail["sha256"] = job.upload_sha256
        audit(session, user, "upload", f"patient:{patient_id}/job:{job.id}", detail)
    request.app.state.jobs.wake()
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(request: Request, db: SessionDep, user: CurrentUser, job_id: int):
    """The job's progress (the page polls /api/jobs/{id} until it ends), other jobs of the same file, and for
    a failed job the retry and delete buttons."""
    with db() as session:
        found = access.require_job(session, user, job_id)
        job = request.app.state.jobs.live(session, found)
        same, elsewhere = duplicates(session, found)
        audit(session, user, "view", f"job:{job_id}", patient_id=job["patient_id"])
    return page(request, "job.html.j2", user, job=job, same_file=same, same_file_elsewhere=elsewhere)


@router.post("/jobs/{job_id}/retry")
def retry(request: Request, db: SessionDep, user: WriterUser, job_id: int, csrf_token: Annotated[str, Form()] = ""):
    """Queue a failed job again with the same upload."""
    check_csrf(request, csrf_token)
    with db() as session:
        job = access.require_job(session, user, job_id)
        retry_job(session, job)
        audit(session, user, "retry", f"job:{job_id}", {"upload": job.upload_name}, patient_id=job.patient_id)
    request.app.state.jobs.wake()
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/delete")
def delete(request: Request, db: SessionDep, user: WriterUser, job_id: int, csrf_token: Annotated[str, Form()] = ""):
    """Delete a failed job with its upload; back to its patient."""
    check_csrf(request, csrf_token)
    with db() as session:
        job = access.require_job(session, user, job_id)
        patient_id, upload = job.patient_id, job.upload_name
        delete_job(session, job)
        audit(session, user, "delete", f"job:{job_id}", {"upload": upload}, patient_id=patient_id)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)
