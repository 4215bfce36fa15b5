"""Roles and care teams: a clinician sees only their care teams' patients (list, pages, report, images,
API), read-only users change nothing, break-glass opens a record for a while and is audited, a clinician
who adds a patient joins its team, and `neurotriage care-team` manages teams from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from neurotriage.anatomy.location import parse_location
from neurotriage.cli import main
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import Patient, utcnow
from neurotriage.clinical.mrn import find_or_create_by_mrn
from neurotriage.errors import UserError
from neurotriage.web import access
from neurotriage.web.auth import add_user
from neurotriage.web.models import AuditEvent, Job, PatientAccess, User

from ..clinical.locates import locate
from .helpers import PASSWORD, make_client, page_csrf, sign_in

NOT_IN_TEAM = "not in your care team"
READ_ONLY = "read-only users cannot change records"


def new_user(settings, name: str, role: str = "clinician") -> None:
    """Add a user of this test's own (the web tests share one database)."""
    with db.transaction(settings.database_url) as session:
        add_user(session, name, PASSWORD, role)


@contextmanager
def signed_in(settings, name: str) -> Iterator[TestClient]:
    """A client signed in as `name`."""
    with make_client(settings) as c:
        assert sign_in(c, name).status_code == 200
        yield c


def api_post(c: TestClient, path: str, body: dict):
    return c.post(path, json=body, headers={"X-CSRF-Token": page_csrf(c)})


def patient_with_finding(c: TestClient, settings, folder: Path, name: str) -> tuple[int, int, int]:
    """A patient added through the API by the signed-in user, with a stored finding (report.html and
    segmentation in `folder`) and a job: (patient id, finding id, job id)."""
    created = api_post(c, "/api/patients", {"name": name, "city": "Leeds", "lat": "53.80", "lon": "-1.55"})
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    (folder / "report.html").write_text("<p>stored report</p>", encoding="utf-8")
    (folder / "C_seg.nii.gz").write_bytes(b"segmentation bytes")
    with db.transaction(settings.database_url) as session:
        intake.add_symptom(session, pid, "hemiparesis", side="left")
        stored = decisions.store_diagnosis(
            session, pid, "C", parse_location(locate("right")), "m",
            segmentation_path=str(folder / "C_seg.nii.gz"), report_dir=str(folder),
        )  # fmt: skip
        job = Job(patient_id=pid, upload_name="case.zip", work_dir=str(folder), status="failed", error="test")
        session.add(job)
        session.flush()
        return pid, stored["finding_id"], job.id


def reads(pid: int, fid: int, jid: int) -> list[str]:
    """Every page, file and API answer that shows the patient's data."""
    return [
        f"/patients/{pid}", f"/reports/{fid}", f"/reports/{fid}/report.html", f"/reports/{fid}/images/seg.nii.gz",
        f"/jobs/{jid}", f"/api/patients/{pid}", f"/api/findings/{fid}", f"/api/jobs/{jid}",
    ]  # fmt: skip


def team_of(settings, pid: int) -> list[tuple[str, str]]:
    with db.transaction(settings.database_url) as session:
        return [(m["username"], m["kind"]) for m in access.care_team(session, pid)]


def test_a_clinician_sees_only_their_care_teams_patients(web_settings, tmp_path):
    for name in ("ct_alice", "ct_bob"):
        new_user(web_settings, name)
    with signed_in(web_settings, "ct_bob") as bob:
        pid, fid, jid = patient_with_finding(bob, web_settings, tmp_path, "Bea Boundary")
        assert all(bob.get(path).status_code == 200 for path in reads(pid, fid, jid))
    with signed_in(web_settings, "ct_alice") as alice:
        assert "Bea Boundary" not in alice.get("/patients").text
        assert "Bea Boundary" not in alice.get("/patients", params={"q": "Bea"}).text
        assert "Bea Boundary" not in str(alice.get("/api/patients").json())
        for path in reads(pid, fid, jid):
            got = alice.get(path)
            if path.startswith("/api/findings/"):  # the findings API does not say which findings exist
                assert got.status_code == 404 and "Bea Boundary" not in got.text, path
                continue
            assert got.status_code == 403, path
            assert NOT_IN_TEAM in got.text and "Bea Boundary" not in got.text and "stored report" not in got.text
        assert alice.get(f"/api/patients/{pid}").json() == {"detail": f"patient {pid}: {NOT_IN_TEAM}"}
        page = alice.get(f"/reports/{fid}").text
        assert f'action="/patients/{pid}/break-glass"' in page and f'name="back" value="/reports/{fid}"' in page
        symptom = api_post(alice, f"/api/patients/{pid}/symptoms", {"code": "headache"})
        assert symptom.status_code == 403
        upload = alice.post(f"/patients/{pid}/upload", data={"csrf_token": page_csrf(alice)},
                            files={"case_zip": ("x.zip", b"PK", "application/zip")})  # fmt: skip
        assert upload.status_code == 403
        assign = alice.post(f"/patients/{pid}/care-team", data={"csrf_token": page_csrf(alice), "username": "ct_alice"})
        assert assign.status_code == 403  # only admins assign care teams

        with signed_in(web_settings, "boss") as admin:
            assert all(admin.get(path).status_code == 200 for path in reads(pid, fid, jid))
            form = {"csrf_token": page_csrf(admin), "username": "ct_alice"}
            assert admin.post(f"/patients/{pid}/care-team", data=form, follow_redirects=False).status_code == 303
            assert 'id="add-team-member"' in admin.get(f"/patients/{pid}").text
            assert team_of(web_settings, pid) == [("ct_alice", "team"), ("ct_bob", "team")]
            assert "Bea Boundary" in alice.get("/patients").text
            assert all(alice.get(path).status_code == 200 for path in reads(pid, fid, jid))
            assert alice.get(f"/reports/{fid}/images/seg.nii.gz").content == b"segmentation bytes"
            assert 'id="add-team-member"' not in alice.get(f"/patients/{pid}").text
            removed = admin.post(f"/patients/{pid}/care-team/remove", data=form, follow_redirects=False)
            assert removed.status_code == 303
        assert alice.get(f"/patients/{pid}").status_code == 403
    with db.transaction(web_settings.database_url) as session:
        changes = session.scalars(
            select(AuditEvent).where(AuditEvent.target == f"patient:{pid}", AuditEvent.action.like("team_%"))
        ).all()
    assert [(e.username, e.action, e.detail) for e in changes] == [
        ("ct_bob", "team_add", {"user": "ct_bob"}),
        ("boss", "team_add", {"user": "ct_alice"}),
        ("boss", "team_remove", {"user": "ct_alice"}),
    ]


def test_read_only_users_see_their_team_but_change_nothing(web_settings, tmp_path):
    new_user(web_settings, "ro_rita", "read_only")
    with signed_in(web_settings, "boss") as admin:
        pid, fid, jid = patient_with_finding(admin, web_settings, tmp_path, "Ros Readonly")
        with db.transaction(web_settings.database_url) as session:
            access.add_to_team(session, pid, "ro_rita", None)
    with signed_in(web_settings, "ro_rita") as rita:
        assert all(rita.get(path).status_code == 200 for path in reads(pid, fid, jid))
        shown = rita.get(f"/patients/{pid}").text + rita.get("/patients").text + rita.get(f"/reports/{fid}").text
        for form in ("add-patient", "edit-patient", "add-symptom", "upload", "review", "add-team-member"):
            assert f'id="{form}"' not in shown, form
        assert "/delete" not in shown  # no symptom's remove button
        token = page_csrf(rita)
        writes = [
            rita.post("/patients", data={"csrf_token": token, "name": "Not Allowed"}),
            rita.post(f"/patients/{pid}/edit", data={"csrf_token": token, "name": "Renamed"}),
            rita.post(f"/patients/{pid}/confirm", data={"csrf_token": token}),
            rita.post(f"/patients/{pid}/symptoms", data={"csrf_token": token, "code": "headache"}),
            rita.post(f"/patients/{pid}/symptoms/1/delete", data={"csrf_token": token}),
            rita.post(
                f"/patients/{pid}/upload",
                data={"csrf_token": token},
                files={"case_zip": ("x.zip", b"PK", "application/zip")},
            ),  # fmt: skip
            rita.post(
                f"/reports/{fid}/review",
                data={
                    "csrf_token": token,
                    "location_decision": "confirm",
                    "verdict_decision": "confirm",
                    "comment": "fine",
                },
            ),  # fmt: skip
            api_post(rita, "/api/patients", {"name": "Not Allowed"}),
            api_post(rita, f"/api/patients/{pid}/confirm", {}),
            api_post(rita, f"/api/patients/{pid}/symptoms", {"code": "headache"}),
        ]
        for r in writes:
            assert r.status_code == 403 and READ_ONLY in r.text, r.request.url
        assert writes[-1].json() == {"detail": READ_ONLY}
    with db.transaction(web_settings.database_url) as session:
        assert session.get(Patient, pid).name == "Ros Readonly"
        assert not session.scalar(select(func.count(Patient.id)).where(Patient.name == "Not Allowed"))


def test_break_glass_opens_the_record_for_a_while_and_is_audited(web_settings, tmp_path):
    new_user(web_settings, "bg_carl")
    with signed_in(web_settings, "boss") as admin:
        pid, fid, _ = patient_with_finding(admin, web_settings, tmp_path, "Gus Glass")
    with signed_in(web_settings, "bg_carl") as carl:
        token = page_csrf(carl)
        assert carl.get(f"/reports/{fid}").status_code == 403
        empty = carl.post(f"/patients/{pid}/break-glass", data={"csrf_token": token, "reason": "  "})
        assert empty.status_code == 400 and "reason: say why" in empty.text
        two_lines = api_post(carl, f"/api/patients/{pid}/break-glass", {"reason": "on call\nand more"})
        assert two_lines.status_code == 400 and two_lines.json()["field"] == "reason"
        form = {"csrf_token": token, "reason": "on call, patient in resus", "back": f"/reports/{fid}"}
        taken = carl.post(f"/patients/{pid}/break-glass", data=form, follow_redirects=False)
        assert (taken.status_code, taken.headers["location"]) == (303, f"/reports/{fid}")
        assert "Gus Glass" in carl.get(f"/reports/{fid}").text and "Gus Glass" in carl.get("/patients").text
        assert "break-glass until" in carl.get(f"/patients/{pid}").text
        elsewhere = carl.post(f"/patients/{pid}/break-glass", data=form | {"back": "//evil.example/"},
                              follow_redirects=False)  # fmt: skip
        assert elsewhere.headers["location"] == f"/patients/{pid}"  # renewed; no redirect off the site
        with db.transaction(web_settings.database_url) as session:
            events = session.scalars(
                select(AuditEvent).where(AuditEvent.action == "break_glass", AuditEvent.target == f"patient:{pid}")
            ).all()
            assert [(e.username, e.detail["reason"]) for e in events] == [("bg_carl", form["reason"])] * 2
            session.execute(
                update(PatientAccess)
                .where(PatientAccess.patient_id == pid, PatientAccess.kind == "break_glass")
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )
        assert carl.get(f"/reports/{fid}").status_code == 403 and "Gus Glass" not in carl.get("/patients").text
        api = api_post(carl, f"/api/patients/{pid}/break-glass", {"reason": "back on call"})
        assert api.status_code == 201 and api.json()["reason"] == "back on call"
        assert carl.get(f"/api/patients/{pid}").status_code == 200


def test_a_grant_lasts_its_period_and_retaking_renews_it(web_settings):
    new_user(web_settings, "bg_dora")
    t0 = utcnow()
    with db.transaction(web_settings.database_url) as session:
        pid = intake.add_patient(session, "Clock Patient").id
        dora = session.scalar(select(User).where(User.username == "bg_dora"))
        access.break_glass(session, dora, pid, "night shift", now=t0)
        assert access.has_access(session, dora, pid, now=t0 + access.BREAK_GLASS - timedelta(seconds=1))
        assert not access.has_access(session, dora, pid, now=t0 + access.BREAK_GLASS)
        renewed = access.break_glass(session, dora, pid, "still on shift", now=t0 + timedelta(hours=3))
        assert renewed.expires_at == t0 + timedelta(hours=3) + access.BREAK_GLASS
        assert access.has_access(session, dora, pid, now=t0 + access.BREAK_GLASS)
        grants = session.scalars(select(PatientAccess).where(PatientAccess.patient_id == pid)).all()
        assert [(g.kind, g.reason) for g in grants] == [("break_glass", "still on shift")]


def test_a_clinician_who_adds_a_patient_joins_its_team_and_received_patients_have_none(web_settings):
    new_user(web_settings, "aj_erin")
    with signed_in(web_settings, "aj_erin") as erin:
        by_form = erin.post("/patients", data={"csrf_token": page_csrf(erin), "name": "Form Join"},
                            follow_redirects=False)  # fmt: skip
        form_pid = int(by_form.headers["location"].rsplit("/", 1)[1])
        api_pid = api_post(erin, "/api/patients", {"name": "Api Join"}).json()["id"]
        assert erin.get(f"/patients/{form_pid}").status_code == 200
    with signed_in(web_settings, "boss") as admin:
        admin_pid = api_post(admin, "/api/patients", {"name": "Admin Made"}).json()["id"]
    with db.transaction(web_settings.database_url) as session:
        received, _ = find_or_create_by_mrn(
            session, mrn="AJ-1", issuer=None, name="ZEPHYR^QUILL", birth_date=None, sex="F"
        )
        received_pid = received.id
    assert team_of(web_settings, form_pid) == team_of(web_settings, api_pid) == [("aj_erin", "team")]
    assert team_of(web_settings, admin_pid) == team_of(web_settings, received_pid) == []
    with signed_in(web_settings, "aj_erin") as erin:
        assert erin.get(f"/patients/{received_pid}").status_code == 403
        assert "zephyr" not in erin.get("/patients").text.lower()
    with signed_in(web_settings, "boss") as admin:
        assert "zephyr" in admin.get("/patients", params={"q": "zephyr"}).text.lower()  # the name looked for above


def test_the_dicom_node_is_for_admins(web_settings):
    new_user(web_settings, "dn_fay")
    with signed_in(web_settings, "dn_fay") as fay:
        page = fay.get("/dicom")
        assert page.status_code == 403 and 'id="error">admins only<' in page.text  # a page, not JSON
        assert fay.get("/api/dicom").json() == {"detail": "admins only"}


def test_care_team_commands(web_settings, monkeypatch, capsys):
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", web_settings.database_url)
    new_user(web_settings, "cli_gil")
    new_user(web_settings, "cli_hal", "read_only")
    with db.transaction(web_settings.database_url) as session:
        pid = intake.add_patient(session, "Cli Team").id
    for name in ("cli_gil", "cli_hal"):
        assert main(["care-team", "add", str(pid), name]) == 0
    assert main(["care-team", "add", str(pid), "cli_gil"]) == 0
    assert main(["care-team", "remove", str(pid), "cli_hal"]) == 0
    assert main(["care-team", "list", str(pid)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        f"cli_gil: added the care team of patient {pid}",
        f"cli_hal: added the care team of patient {pid}",
        f"cli_gil: already on the care team of patient {pid}",
        f"cli_hal: removed from the care team of patient {pid}",
    ]
    assert out[4].startswith("cli_gil\tclinician\tcare team\t(since ") and out[4].endswith(", by -)")
    assert out[5:] == [f"patient {pid}: 1 in the care team, 0 break-glass grants open"]
    for argv, message in (
        (["add", str(pid), "nobody_here"], "user 'nobody_here': no such user"),
        (["add", str(pid), "boss"], "user 'boss': an admin sees every patient without a care team"),
        (["remove", str(pid), "cli_hal"], f"user 'cli_hal': not on the care team of patient {pid}"),
        (["list", "99999999"], "patient 99999999: no such patient"),
    ):
        assert main(["care-team", *argv]) == 2
        assert capsys.readouterr().err == f"neurotriage: error: {message}\n"


@pytest.mark.parametrize("reason", ["", "   ", "one\ntwo", "x" * (access.REASON_LEN + 1)])
def test_a_break_glass_reason_is_one_line(reason):
    with pytest.raises(UserError) as caught:
        access.check_reason(reason)
    assert caught.value.field == "reason"
