"""Helpers of the web tests: clients of a fresh app, CSRF tokens, signing in."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.web.app import create_app
from neurotriage.web.models import AuditEvent
from neurotriage.web.settings import WebSettings

PASSWORD = "correct horse battery"
LEFT_WEAKNESS = (("hemiparesis", "left"),)


def make_client(settings: WebSettings, **overrides) -> TestClient:
    """A client of a fresh app over HTTPS (the session cookie is Secure)."""
    return TestClient(create_app(replace(settings, **overrides)), base_url="https://testserver")


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, username: str = "clin", password: str = PASSWORD):
    """Sign in through the form; returns the response after redirects."""
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


def page_csrf(client: TestClient, path: str = "/patients") -> str:
    """The CSRF token of the signed-in session, read from a page."""
    return csrf_of(client.get(path).text)


def add_finding(
    settings: WebSettings, name: str, folder: Path | None = None, symptoms: tuple = LEFT_WEAKNESS
) -> tuple[int, int]:
    """A patient in Leeds with `symptoms` and a stored finding of a right frontal tumour; with `folder`, the
    finding's report folder, holding a report.html and the segmentation: (patient id, finding id)."""
    from ..clinical.locates import locate

    columns = {}
    if folder is not None:
        (folder / "report.html").write_text("<p>stored report</p>", encoding="utf-8")
        (folder / "C_seg.nii.gz").write_bytes(b"not really an image")
        columns = {"segmentation_path": str(folder / "C_seg.nii.gz"), "report_dir": str(folder)}
    with db.transaction(settings.database_url) as session:
        patient = intake.add_patient(session, name, city="Leeds", lat="53.80", lon="-1.55")
        for code, side in symptoms:
            intake.add_symptom(session, patient.id, code, side=side)
        stored = decisions.store_diagnosis(session, patient.id, "C", parse_location(locate("right")), "m", **columns)
        return patient.id, stored["finding_id"]


def audited(url: str, action: str, target: str) -> list[int | None]:
    """The patient ids of the audit events of `action` on `target`."""
    with db.transaction(url) as session:
        query = select(AuditEvent.patient_id).where(AuditEvent.action == action, AuditEvent.target == target)
        return list(session.scalars(query))
