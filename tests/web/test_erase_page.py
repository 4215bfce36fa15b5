"""The erase page: admins only, the patient's name typed to confirm, then the patient list says what went."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from neurotriage.clinical import db
from neurotriage.clinical.models import Patient
from neurotriage.web import access
from neurotriage.web.models import AuditEvent

from .helpers import make_client, page_csrf, sign_in


@pytest.fixture
def settings(own_web_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fresh app database with two sample patients, and a NEUROTRIAGE_HOME of the test's own."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    return own_web_settings


def patient_name(settings, patient_id: int) -> str | None:
    with db.transaction(settings.database_url) as session:
        patient = session.get(Patient, patient_id)
        return patient.name if patient else None


def test_only_admins_see_the_page_and_the_link(settings) -> None:
    with db.transaction(settings.database_url) as session:
        access.add_to_team(session, 1, "doc", None)
    with make_client(settings) as clinician:
        sign_in(clinician, "doc")
        assert clinician.get("/patients/1/erase").status_code == 403
        page = clinician.get("/patients/1")
        assert page.status_code == 200 and 'id="erase-link"' not in page.text
    with make_client(settings) as admin:
        sign_in(admin, "boss")
        assert 'href="/patients/1/erase"' in admin.get("/patients/1").text
        shown = admin.get("/patients/1/erase")
        assert shown.status_code == 200 and patient_name(settings, 1) in shown.text
        assert "studies" in shown.text and "files" in shown.text


def test_erasing_needs_the_name_typed_and_a_valid_form(settings) -> None:
    name = patient_name(settings, 1)
    with make_client(settings) as admin:
        sign_in(admin, "boss")
        token = page_csrf(admin, "/patients/1/erase")
        wrong = admin.post("/patients/1/erase", data={"confirm_name": name + "x", "csrf_token": token})
        assert wrong.status_code == 400 and "nothing was erased" in wrong.text
        forged = admin.post("/patients/1/erase", data={"confirm_name": name, "csrf_token": "forged"})
        assert forged.status_code == 403
        assert patient_name(settings, 1) == name
        done = admin.post(
            "/patients/1/erase", data={"confirm_name": f" {name} ", "csrf_token": token}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"] == "/patients"
        listing = admin.get("/patients").text
        assert "Erased patient 1: " in listing and name not in listing
        assert "Erased patient 1" not in admin.get("/patients").text  # said once
        assert admin.get("/patients/1").status_code == 404
    assert patient_name(settings, 1) is None and patient_name(settings, 2) is not None
    with db.transaction(settings.database_url) as session:
        stone = session.scalar(select(AuditEvent).where(AuditEvent.action == "erase"))
        assert (stone.username, stone.target) == ("boss", "patient:1")
