"""Every read of patient data leaves an audit row naming the patient; sign-ins record the client; the admin's
audit page and API filter and page the log and refuse bad filters; no-store and HSTS headers."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.web.audit_log import patient_of
from neurotriage.web.models import AuditEvent, Job
from neurotriage.web.repeat_reads import RepeatReads
from neurotriage.web.throttle import LoginThrottle

from .helpers import PASSWORD, add_finding, make_client, page_csrf, sign_in

AGENT = "AuditProbe/1.0 " + "x" * 1000


def last_id(url: str) -> int:
    with db.transaction(url) as session:
        return session.scalar(select(func.max(AuditEvent.id))) or 0


def events_after(url: str, first: int) -> list[AuditEvent]:
    """The audit events written since `first`, oldest first (detached)."""
    with db.transaction(url) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > first).order_by(AuditEvent.id)).all()
        session.expunge_all()
        return list(rows)


@pytest.fixture
def stored(web_settings, tmp_path) -> dict[str, int]:
    """A patient with a finding (report.html and segmentation on disk) and a finished job."""
    patient, finding = add_finding(web_settings, "Audit Subject", tmp_path)
    with db.transaction(web_settings.database_url) as session:
        job = Job(patient_id=patient, status="done", upload_name="c.zip", work_dir="", stages=[], finding_id=finding)
        session.add(job)
        session.flush()
        return {"patient": patient, "finding": finding, "job": job.id}


def test_every_read_of_patient_data_is_audited_with_the_patient(client, web_settings, stored):
    pid, fid, jid = stored["patient"], stored["finding"], stored["job"]
    reads = {
        f"/patients/{pid}": ("view", f"patient:{pid}"),
        f"/api/patients/{pid}": ("view", f"patient:{pid}"),
        f"/reports/{fid}": ("view", f"finding:{fid}"),
        f"/api/findings/{fid}": ("view", f"finding:{fid}"),
        f"/reports/{fid}/report.html": ("view", f"finding:{fid}/report.html"),
        f"/reports/{fid}/images/seg.nii.gz": ("download", f"finding:{fid}/images/seg.nii.gz"),
        f"/jobs/{jid}": ("view", f"job:{jid}"),
        f"/api/jobs/{jid}": ("view", f"job:{jid}"),
    }
    for path, expected in reads.items():
        first = last_id(web_settings.database_url)
        assert client.get(path).status_code == 200, path
        rows = events_after(web_settings.database_url, first)
        assert [(r.action, r.target, r.patient_id, r.username) for r in rows] == [(*expected, pid, "clin")], path


def test_each_image_download_is_one_row(client, web_settings, stored):
    first = last_id(web_settings.database_url)
    for _ in range(3):
        assert client.get(f"/reports/{stored['finding']}/images/seg.nii.gz").status_code == 200
    rows = events_after(web_settings.database_url, first)
    assert [r.action for r in rows] == ["download"] * 3


def test_writes_about_a_patient_carry_its_id(client, web_settings, stored):
    first = last_id(web_settings.database_url)
    token = page_csrf(client, f"/reports/{stored['finding']}")
    review = {"csrf_token": token, "location_decision": "confirm", "verdict_decision": "confirm", "comment": "ok"}
    assert client.post(f"/reports/{stored['finding']}/review", data=review).status_code == 200
    reviewed = [r for r in events_after(web_settings.database_url, first) if r.action == "review"]
    assert [r.patient_id for r in reviewed] == [stored["patient"]]


@pytest.mark.parametrize(
    ("target", "detail", "expected"),
    [
        ("patient:12", None, 12),
        ("patient:12/job:3", {"file": "x.zip"}, 12),
        ("finding:4", {"patient": 7}, 7),
        ("patients", {"search": "smith"}, None),
        ("patient:99999999999999999999", None, None),  # a mistyped URL, not a patient
        ("user:patient:5", None, None),
        ("finding:4", {"patient": True}, None),
    ],
)
def test_the_patient_of_an_event(target, detail, expected):
    assert patient_of(target, detail) == expected


def test_sign_ins_record_the_client_address_and_agent(web_settings):
    first = last_id(web_settings.database_url)
    with make_client(web_settings) as c:
        c.headers["User-Agent"] = AGENT
        c.app.state.throttle = LoginThrottle(clock=lambda: 0.0, account_free=1)
        assert sign_in(c, "boss", "not the password").status_code == 401
        assert sign_in(c, "boss", PASSWORD).status_code == 429
        assert sign_in(c, "boss", PASSWORD).status_code == 429  # a further refusal of the same wait: no row
        c.app.state.throttle = LoginThrottle()
        assert sign_in(c, "boss", PASSWORD).status_code == 200
    rows = [r for r in events_after(web_settings.database_url, first) if r.target == "user:boss"]
    assert [r.action for r in rows] == ["login_failed", "login_throttled", "login"]
    for row in rows:
        assert row.detail["ip"] == "testclient"
        assert row.detail["user_agent"].startswith("AuditProbe/1.0 ") and len(row.detail["user_agent"]) == 300
    assert rows[1].detail["wait_s"] >= 1


def test_one_refusal_per_wait_is_reported():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0], account_free=1)
    assert not throttle.first_refusal("boss", "10.0.0.1")  # nothing to wait for
    throttle.record("boss", "10.0.0.1", ok=False)
    assert [throttle.first_refusal("Boss", "10.0.0.1") for _ in range(3)] == [True, False, False]
    now[0] += throttle.retry_after_s("boss", "10.0.0.1")
    throttle.record("boss", "10.0.0.1", ok=False)  # the next guess, after the wait, fails too
    assert throttle.first_refusal("boss", "10.0.0.1")


def test_headers_keep_patient_data_out_of_caches_and_hsts_only_over_https(client, web_settings, stored):
    for path in ("/patients", f"/reports/{stored['finding']}/images/seg.nii.gz",
                 f"/reports/{stored['finding']}/report.html", f"/api/patients/{stored['patient']}"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store", path
        assert r.headers["strict-transport-security"] == "max-age=31536000", path
    static = client.get("/static/app.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("cache-control", "")
    assert "strict-transport-security" in static.headers
    with make_client(web_settings) as plain:
        plain.base_url = "http://testserver"
        login = plain.get("/login")
        assert login.headers["cache-control"] == "no-store" and "strict-transport-security" not in login.headers
        assert "strict-transport-security" not in plain.get("/static/app.css").headers


# --- the audit page and API, on a database of their own with a known log


def event(at: datetime, username: str, action: str, target: str, patient: int | None = None) -> AuditEvent:
    return AuditEvent(at=at, username=username, action=action, target=target, patient_id=patient)


DAY = datetime(2024, 5, 1, 9, 30)


def the_log() -> list[AuditEvent]:
    """A known log: five events over three days."""
    return [
        event(DAY, "alice", "view", "patient:1", 1),
        event(DAY + timedelta(hours=1), "bob", "download", "finding:3/images/seg.nii.gz", 2),
        event(DAY + timedelta(days=1), "-", "login_failed", "user:alice"),
        event(DAY + timedelta(days=2), "alice", "update", "patient:2", 2),
        event(DAY + timedelta(days=2, hours=14), "bob", "view", "patient:1", 1),  # 23:30 on 3 May
    ]


@pytest.fixture
def log_client(own_web_settings):
    """A signed-in admin's client of an app whose audit log holds `the_log()` before the sign-in."""
    with db.transaction(own_web_settings.database_url) as session:
        session.add_all(the_log())
    with make_client(own_web_settings) as c:
        assert sign_in(c, "boss").status_code == 200
        yield c


def targets(client, **params) -> list[str]:
    r = client.get("/api/audit", params=params)
    assert r.status_code == 200, r.text
    return [e["target"] for e in r.json() if e["user"] != "boss"]


def test_audit_api_filters(log_client):
    assert targets(log_client, user="alice") == ["patient:2", "user:alice", "patient:1"]  # newest first
    assert targets(log_client, patient="1") == ["patient:1", "patient:1"]
    assert targets(log_client, action="download") == ["finding:3/images/seg.nii.gz"]
    assert targets(log_client, **{"from": "2024-05-02", "to": "2024-05-03"}) == ["patient:1", "patient:2", "user:alice"]
    assert targets(log_client, to="2024-05-01") == ["finding:3/images/seg.nii.gz", "patient:1"]
    assert targets(log_client, user="bob", patient="1", **{"from": "2024-05-03"}) == ["patient:1"]
    assert targets(log_client, action="no_such_action") == []
    got = log_client.get("/api/audit", params={"patient": "2"}).json()
    assert {e["patient_id"] for e in got} == {2}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"patient": "abc"}, "patient"),
        ({"patient": "0"}, "patient"),
        ({"patient": "99999999999999999999"}, "patient"),
        ({"from": "2024-13-01"}, "from"),
        ({"from": "2024-05-03", "to": "2024-05-01"}, "to"),
        ({"page": "0"}, "page"),
        ({"limit": "5000"}, "limit"),
        ({"user": "u" * 65}, "user"),
    ],
)
def test_audit_api_refuses_bad_filters_naming_them(log_client, params, field):
    r = log_client.get("/api/audit", params=params)
    assert r.status_code == 400 and r.json()["field"] == field
    assert r.json()["detail"].startswith(f"{field}: ") and "\n" not in r.json()["detail"]


def test_audit_page_filters_and_shows_a_bad_filter_beside_its_control(log_client):
    r = log_client.get("/admin/audit", params={"user": "bob", "action": "view"})
    assert r.status_code == 200 and "patient:1" in r.text and "finding:3" not in r.text
    assert "<option selected>view</option>" in r.text and "<option>login_failed</option>" in r.text
    bad = log_client.get("/admin/audit", params={"patient": "abc", "from": "2024-05-01"})
    assert (
        bad.status_code == 400 and 'id="error-patient"' in bad.text and "patient: must be a patient number" in bad.text
    )
    assert 'value="2024-05-01"' in bad.text and "patient:1" not in bad.text


def test_audit_pages_newest_first(log_client, own_web_settings):
    with db.transaction(own_web_settings.database_url) as session:
        session.add_all(
            event(DAY + timedelta(days=10, seconds=i), "carol", "view", f"patient:{i}", i) for i in range(1, 251)
        )
    first = log_client.get("/admin/audit", params={"user": "carol"})
    assert first.text.count("<tr><td>2024-05-11") == 100 and "patient:250<" in first.text
    assert 'href="/admin/audit?user=carol&amp;page=2" rel="next"' in first.text and 'rel="prev"' not in first.text
    last = log_client.get("/admin/audit", params={"user": "carol", "page": "3"})
    assert last.text.count("<tr><td>2024-05-11") == 50 and "patient:1<" in last.text and 'rel="next"' not in last.text
    assert 'href="/admin/audit?user=carol&amp;page=2" rel="prev"' in last.text
    api = log_client.get("/api/audit", params={"user": "carol", "limit": "200"})
    assert len(api.json()) == 200 and api.headers["link"] == '</api/audit?user=carol&page=2&limit=200>; rel="next"'
    tail = log_client.get("/api/audit", params={"user": "carol", "limit": "200", "page": "2"})
    assert [e["patient_id"] for e in tail.json()] == list(range(50, 0, -1)) and "link" not in tail.headers


def test_the_audit_log_is_for_admins_only(web_settings):
    with make_client(web_settings) as clinician:
        sign_in(clinician, "doc")
        assert clinician.get("/admin/audit").status_code == 403
        assert clinician.get("/api/audit").status_code == 403
    with make_client(web_settings) as anonymous:
        assert anonymous.get("/admin/audit", follow_redirects=False).headers["location"] == "/login"


def test_a_polled_job_status_is_audited_once_per_window(client, web_settings, stored):
    first = last_id(web_settings.database_url)
    for _ in range(5):
        assert client.get(f"/api/jobs/{stored['job']}").status_code == 200
    assert [r.target for r in events_after(web_settings.database_url, first)] == [f"job:{stored['job']}"]


def test_repeat_reads_audit_again_after_the_window():
    now = [0.0]
    reads = RepeatReads(window_s=60, max_keys=2, clock=lambda: now[0])
    assert reads.should_audit("a") and not reads.should_audit("a")
    now[0] = 61
    assert reads.should_audit("a")
    assert reads.should_audit("b") and reads.should_audit("c")  # "a" falls out: the oldest of three
    assert reads.should_audit("a")
