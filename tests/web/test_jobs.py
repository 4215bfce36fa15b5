"""Background diagnosis: two jobs at once, the report page, images, review and sign-off, audit; jobs on
the study queue, diagnosed by a separate worker or taken over after a server stopped mid-job."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from neurotriage import NOTICE
from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding, Study, utcnow
from neurotriage.diagnosis import queue
from neurotriage.web.jobs import JOB_STUDIES
from neurotriage.web.models import AuditEvent, Job

from .helpers import make_client, page_csrf, sign_in

ORACLE_CLI = Path(__file__).parents[1] / "diagnosis" / "oracle_cli.py"  # the CLI with the oracle model

TIMEOUT_S = 120


def new_patient(url: str, name: str, side: str) -> int:
    with db.transaction(url) as session:
        patient = intake.add_patient(session, name, city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, patient.id, "hemiparesis", side=side)
        return patient.id


def start_job(client, patient_id: int, case_zip: Path) -> int:
    r = client.post(
        f"/patients/{patient_id}/upload",
        data={"csrf_token": page_csrf(client)},
        files={"case_zip": (case_zip.name, case_zip.read_bytes(), "application/zip")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return int(r.headers["location"].rsplit("/", 1)[1])


def wait_for(client, job_id: int) -> dict:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish in {TIMEOUT_S} s")


@pytest.mark.slow
def test_two_jobs_at_once_then_review_and_sign_off(client, web_settings, case_zip, oracle):
    url = web_settings.database_url
    concordant = new_patient(url, "Left Weakness", "left")  # right frontal tumour explains left weakness
    discordant = new_patient(url, "Right Weakness", "right")
    jobs = [start_job(client, concordant, case_zip), start_job(client, discordant, case_zip)]
    seen_running = client.get(f"/jobs/{jobs[0]}")
    assert seen_running.status_code == 200 and NOTICE in seen_running.text
    done = [wait_for(client, j) for j in jobs]
    assert [d["status"] for d in done] == ["done", "done"], [d["error"] for d in done]
    assert done[0]["finding_id"] != done[1]["finding_id"]
    assert {s["name"] for s in done[0]["stages"]} >= {"segment", "locate", "report"}
    assert all(s["state"] == "done" for s in done[0]["stages"])
    # Each job kept its own folders.
    folders = {Path(web_settings.data_dir, "jobs", str(j), "report", "report.json") for j in jobs}
    assert all(f.is_file() for f in folders) and len(folders) == 2

    good, bad = (client.get(f"/api/findings/{d['finding_id']}").json() for d in done)
    assert (good["verdict"], good["referral_status"]) == ("concordant", "final")
    # Web jobs write the FHIR bundle too, and the page offers it with the other report files.
    labels = {d["label"]: d["url"] for d in good["downloads"]}
    assert {"Report data (report.json)", "FHIR R4 bundle", "Segmentation in BraTS space (NIfTI)"} <= set(labels)
    bundle = client.get(labels["FHIR R4 bundle"])
    assert bundle.status_code == 200 and bundle.json()["resourceType"] == "Bundle"
    assert (bad["verdict"], bad["needs_review"]) == ("discordant", True)
    assert bad["referral_status"].startswith("provisional")

    fid = done[1]["finding_id"]
    page = client.get(f"/reports/{fid}")
    assert page.status_code == 200 and NOTICE in page.text
    assert good["summary"].split(",")[0] in client.get(f"/reports/{done[0]['finding_id']}").text
    assert "Flagged for clinician review" in page.text and "provisional" in page.text
    frame = client.get(f"/reports/{fid}/report.html")
    assert frame.status_code == 200 and "default-src 'none'" in frame.headers["content-security-policy"]
    for name in ("t1ce.nii.gz", "flair.nii.gz", "seg.nii.gz"):
        image = client.get(f"/reports/{fid}/images/{name}")
        assert image.status_code == 200 and gzip.decompress(image.content)[344:348] == b"n+1\x00"
    assert client.get(f"/reports/{fid}/images/..%2F..%2Fweb.db").status_code in (400, 404)
    assert client.get(f"/reports/{fid}/images/report.json").status_code == 400

    token = page_csrf(client, f"/reports/{fid}")
    comment = "weakness is old; signed off after MDT"
    review = {"csrf_token": token, "location_decision": "confirm", "verdict_decision": "override",
              "verdict_override": "partially concordant", "comment": comment}  # fmt: skip
    refused = client.post(f"/reports/{fid}/review", data=review | {"verdict_override": ""})
    assert refused.status_code == 400 and "verdict_override" in refused.text
    assert client.post(f"/reports/{fid}/review", data=review).status_code == 200
    after = client.get(f"/api/findings/{fid}").json()
    assert after["referral_status"] == "final"
    signed = after["reviews"][0]
    assert (signed["by"], signed["location"], signed["verdict"], signed["comment"]) == (
        "clin",
        "confirmed",
        "partially concordant",
        comment,
    )
    with db.transaction(url) as session:
        actions = set(session.execute(select(AuditEvent.action, AuditEvent.target)).all())
    upload = ("upload", f"patient:{discordant}/job:{jobs[1]}")
    assert {("review", f"finding:{fid}"), ("view", f"finding:{fid}"), upload} <= actions


def test_jobs_from_before_the_queue_cut_short_by_a_restart_are_failed_with_a_reason(web_settings):
    url = web_settings.database_url
    pid = new_patient(url, "Restarted", "left")
    with db.transaction(url) as session:
        job = Job(patient_id=pid, status="running", upload_name="x.zip", work_dir="/nonexistent", stages=[])  # no study
        session.add(job)
        session.flush()
        job_id = job.id
    with make_client(web_settings) as c:  # starting the app recovers stale jobs
        sign_in(c)
        job = c.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "failed" and "interrupted" in job["error"]
        assert "interrupted" in c.get(f"/jobs/{job_id}").text


def job_study(url: str, job_id: int) -> Study:
    with db.transaction(url) as session:
        return session.get(Study, session.get(Job, job_id).study_id)


def queue_a_job(settings, case_zip: Path) -> tuple[int, int]:
    """A patient and an uploaded job, through a server that runs no job threads: (patient id, job id)."""
    pid = new_patient(settings.database_url, "Queued Upload", "left")
    with make_client(settings, job_workers=0) as c:
        sign_in(c)
        return pid, start_job(c, pid, case_zip)


def test_an_upload_is_a_queued_study_of_its_case_shown_from_the_queue(own_web_settings, case_zip):
    url = own_web_settings.database_url
    pid, job_id = queue_a_job(own_web_settings, case_zip)
    study = job_study(url, job_id)
    case = Path(study.case_ref)
    assert study.patient_id == pid and case.parent == own_web_settings.data_dir / "jobs" / str(job_id)
    assert case.name.startswith(f"job-{job_id}-") and (case / "SYN_RF_t1ce.nii.gz").is_file()
    assert study.queued_at is not None and study.attempts == 0
    with make_client(own_web_settings, job_workers=0) as c:  # a restart leaves it queued
        sign_in(c)
        assert c.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
        other = queue.claim(queue.QueueSettings(), "other-host:7", url, where=JOB_STUDIES)
        assert other.study_id == study.id
        running = c.get(f"/api/jobs/{job_id}").json()
        assert (running["status"], running["stages"]) == ("running", [])  # no live stages from elsewhere
        failing = f"{study.case_ref}/X_t2.nii.gz: volume is all zero"
        assert queue.record_failure(other, failing, queue.QueueSettings(max_attempts=1))  # parked
        failed = c.get(f"/api/jobs/{job_id}").json()
        assert (failed["status"], failed["error"]) == ("failed", "SYN_RF.zip/X_t2.nii.gz: volume is all zero")
        assert "failed" in c.get(f"/jobs/{job_id}").text and "failed" in c.get(f"/patients/{pid}").text


@pytest.mark.slow
def test_a_job_diagnosed_by_a_separate_worker_is_shown_done_with_its_finding(own_web_settings, case_zip, tmp_path):
    url = own_web_settings.database_url
    pid, job_id = queue_a_job(own_web_settings, case_zip)
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": url, "NEUROTRIAGE_HOME": str(tmp_path / "home")}
    worker = subprocess.run(
        [sys.executable, str(ORACLE_CLI), "worker", "--until-empty", "--json"],
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    assert [row["status"] for row in json.loads(worker.stdout)["studies"]] == ["ok"]
    with db.transaction(url) as session:
        finding_id = session.scalar(select(Finding.id).where(Finding.study_id == session.get(Job, job_id).study_id))
    with make_client(own_web_settings, job_workers=0) as c:
        sign_in(c)
        job = c.get(f"/api/jobs/{job_id}").json()
        assert (job["status"], job["finding_id"], job["report_url"]) == ("done", finding_id, f"/reports/{finding_id}")
        assert c.get(f"/reports/{finding_id}").status_code == 200
        assert f"/reports/{finding_id}" in c.get(f"/jobs/{job_id}").text


@pytest.mark.slow
def test_a_job_whose_server_stopped_mid_study_is_taken_over_after_a_restart(own_web_settings, case_zip, oracle):
    url = own_web_settings.database_url
    _, job_id = queue_a_job(own_web_settings, case_zip)
    # The server diagnosing it was killed: its claim stays until its lease runs out.
    killed = queue.claim(queue.QueueSettings(), "killed-server:1/diagnose-0", url, where=JOB_STUDIES)
    with db.transaction(url) as session:
        session.execute(update(Study).where(Study.id == killed.study_id).values(lease_until=utcnow() - timedelta(1)))
    with make_client(own_web_settings, job_workers=1) as c:
        sign_in(c)
        job = wait_for(c, job_id)
    assert job["status"] == "done" and job["finding_id"], job["error"]
    assert {"segment", "report"} <= {s["name"] for s in job["stages"]}
    study = job_study(url, job_id)
    assert (study.attempts, study.claim_token, study.queued_at) == (2, None, None)  # the takeover was attempt 2
    assert (own_web_settings.data_dir / "jobs" / str(job_id) / "report" / "report.json").is_file()


def test_an_upload_wakes_an_idle_job_thread(own_web_settings, case_zip, oracle):
    pid = new_patient(own_web_settings.database_url, "Woken", "left")
    client = make_client(own_web_settings, job_workers=1)
    client.app.state.jobs.poll_s = 10 * TIMEOUT_S  # only the upload's wake-up can start the job in time
    with client:
        sign_in(client)
        time.sleep(0.5)  # the thread has looked once and is idle
        assert wait_for(client, start_job(client, pid, case_zip))["status"] == "done"
