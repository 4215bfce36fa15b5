"""Background diagnosis: two jobs at once, the report page, images, review and sign-off, audit."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from neurotriage import NOTICE
from neurotriage.clinical import db, intake
from neurotriage.web.models import AuditEvent, Job

from .helpers import make_client, page_csrf, sign_in

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


def test_jobs_cut_short_by_a_restart_are_failed_with_a_reason(web_settings):
    url = web_settings.database_url
    pid = new_patient(url, "Restarted", "left")
    with db.transaction(url) as session:
        job = Job(patient_id=pid, status="running", upload_name="x.zip", work_dir="/nonexistent", stages=[])
        session.add(job)
        session.flush()
        job_id = job.id
    with make_client(web_settings) as c:  # starting the app recovers stale jobs
        sign_in(c)
        job = c.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "failed" and "interrupted" in job["error"]
        assert "interrupted" in c.get(f"/jobs/{job_id}").text
