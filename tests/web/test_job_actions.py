"""A failed job can be retried with its upload or deleted with it; the same upload twice is flagged, not refused;
jobs still queued when the server stops are diagnosed after it starts again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import select

from neurotriage.clinical import db
from neurotriage.clinical.models import Study
from neurotriage.diagnosis import queue
from neurotriage.web import access
from neurotriage.web.models import AuditEvent, Job

from .helpers import make_client, page_csrf, sign_in
from .test_access import READ_ONLY, new_user, signed_in
from .test_jobs import new_patient, start_job, wait_for


def fail(url: str, job_id: int) -> None:
    """Fail the job's study for good, as a worker whose last attempt failed does."""
    with db.transaction(url) as session:
        study_id = session.get(Job, job_id).study_id
    claimed = queue.claim(queue.QueueSettings(), "test-worker:1", url, where=Study.id == study_id)
    assert queue.record_failure(claimed, "volume is all zero", queue.QueueSettings(max_attempts=1))


def actions(url: str, job_id: int) -> list[tuple[str, int | None]]:
    with db.transaction(url) as session:
        query = select(AuditEvent.action, AuditEvent.patient_id).where(AuditEvent.target == f"job:{job_id}")
        return [tuple(row) for row in session.execute(query) if row[0] != "view"]


@pytest.fixture
def queued(own_web_settings, case_zip):
    """A client of a server that runs no job threads, signed in as the admin `clin`, and a patient."""
    with make_client(own_web_settings, job_workers=0) as c:
        sign_in(c)
        yield c, new_patient(own_web_settings.database_url, "Job Owner", "left")


def test_the_same_upload_twice_is_flagged_not_refused(own_web_settings, queued, case_zip):
    c, pid = queued
    first, second = start_job(c, pid, case_zip), start_job(c, pid, case_zip)
    other = start_job(c, new_patient(own_web_settings.database_url, "Other Patient", "left"), case_zip)
    with db.transaction(own_web_settings.database_url) as session:
        digests = {session.get(Job, j).upload_sha256 for j in (first, second, other)}
    assert digests == {hashlib.sha256(case_zip.read_bytes()).hexdigest()}
    page = c.get(f"/jobs/{second}").text
    assert f'same file as <a href="/jobs/{first}">job {first}</a> and as 1 job of another patient' in page
    patient = c.get(f"/patients/{pid}").text
    assert f"same file as job {second} and as 1 job of another patient" in patient
    assert f"same file as job {first} and as 1 job of another patient" in patient
    jobs = {j["id"]: j for j in c.get(f"/api/patients/{pid}").json()["jobs"]}
    assert (jobs[second]["same_file_as"], jobs[second]["same_file_elsewhere"]) == ([first], 1)
    elsewhere = c.get(f"/jobs/{other}").text  # the other patient's jobs are counted, not named
    assert "Duplicate upload: same file as 2 jobs of another patient." in elsewhere
    assert f'href="/jobs/{first}"' not in elsewhere


def test_a_failed_job_is_retried_with_its_upload(own_web_settings, queued, case_zip):
    c, pid = queued
    url = own_web_settings.database_url
    job_id = start_job(c, pid, case_zip)
    token = page_csrf(c)
    refused = c.post(f"/jobs/{job_id}/retry", data={"csrf_token": token})
    assert refused.status_code == 400 and "only a failed job can be retried; it is queued" in refused.text
    fail(url, job_id)
    assert 'id="job-actions" hidden' not in c.get(f"/jobs/{job_id}").text
    retried = c.post(f"/jobs/{job_id}/retry", data={"csrf_token": token})
    assert retried.status_code == 200 and retried.url.path == f"/jobs/{job_id}"
    assert c.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
    assert 'id="job-actions" hidden' in c.get(f"/jobs/{job_id}").text
    with db.transaction(url) as session:
        study = session.get(Study, session.get(Job, job_id).study_id)
        assert (study.parked_at, study.attempts) == (None, 0) and study.queued_at is not None
        assert Path(study.case_ref).is_dir()
    assert actions(url, job_id) == [("retry", pid)]


def test_a_failed_job_is_deleted_with_its_upload(own_web_settings, queued, case_zip):
    c, pid = queued
    url = own_web_settings.database_url
    job_id = start_job(c, pid, case_zip)
    with db.transaction(url) as session:
        job = session.get(Job, job_id)
        work, study_id = Path(job.work_dir), job.study_id
    token = page_csrf(c)
    assert c.post(f"/jobs/{job_id}/delete", data={"csrf_token": token}).status_code == 400  # still queued
    fail(url, job_id)
    deleted = c.post(f"/jobs/{job_id}/delete", data={"csrf_token": token})
    assert deleted.status_code == 200 and deleted.url.path == f"/patients/{pid}"
    assert not work.exists() and c.get(f"/jobs/{job_id}").status_code == 404
    with db.transaction(url) as session:
        assert session.get(Job, job_id) is None and session.get(Study, study_id) is None
    assert actions(url, job_id) == [("delete", pid)]


def test_read_only_users_neither_retry_nor_delete(own_web_settings, queued, case_zip):
    c, pid = queued
    job_id = start_job(c, pid, case_zip)
    fail(own_web_settings.database_url, job_id)
    new_user(own_web_settings, "ro_jobs", "read_only")
    with db.transaction(own_web_settings.database_url) as session:
        access.add_to_team(session, pid, "ro_jobs", None)
    with signed_in(own_web_settings, "ro_jobs") as reader:
        assert 'id="job-actions"' not in reader.get(f"/jobs/{job_id}").text
        token = page_csrf(reader)
        for action in ("retry", "delete"):
            refused = reader.post(f"/jobs/{job_id}/{action}", data={"csrf_token": token})
            assert refused.status_code == 403 and READ_ONLY in refused.text
    assert c.get(f"/api/jobs/{job_id}").json()["status"] == "failed"


@pytest.mark.slow
def test_jobs_queued_at_shutdown_resume_at_start_up(own_web_settings, case_zip, oracle):
    url = own_web_settings.database_url
    pid = new_patient(url, "Resumed Upload", "left")
    with make_client(own_web_settings, job_workers=0) as c:  # its start-up and shutdown run; no job runs
        sign_in(c)
        waiting, failing = start_job(c, pid, case_zip), start_job(c, pid, case_zip)
        fail(url, failing)
        assert c.post(f"/jobs/{failing}/retry", data={"csrf_token": page_csrf(c)}).status_code == 200
        assert [c.get(f"/api/jobs/{j}").json()["status"] for j in (waiting, failing)] == ["queued", "queued"]
    with make_client(own_web_settings, job_workers=1) as c:
        sign_in(c)
        done = [wait_for(c, j) for j in (waiting, failing)]
    assert [d["status"] for d in done] == ["done", "done"], [d["error"] for d in done]
