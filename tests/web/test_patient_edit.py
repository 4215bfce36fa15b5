"""Editing a patient through the form and the API changes only the fields sent; a city typed without coordinates
shows its GeoNames match, and an unknown or ambiguous one is named beside the city field."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from neurotriage.clinical import db, intake
from neurotriage.web.models import AuditEvent

from .helpers import make_client, page_csrf, sign_in
from .test_pages import beside


@pytest.fixture
def pid(web_settings) -> int:
    """A patient with every field filled in (an MRN of its own: the web tests share one database)."""
    mrn = f"ED-{uuid.uuid4().hex[:8]}"
    with db.transaction(web_settings.database_url) as session:
        return intake.add_patient(
            session, "Edit Subject", "female", "1961-04-02", "York", "53.96", "-1.08", "right", mrn, "HOSP"
        ).id


def stored(settings, patient_id: int) -> dict:
    with db.transaction(settings.database_url) as session:
        return intake.patient_summary(intake.get_patient(session, patient_id))


def last_update(settings, patient_id: int) -> dict:
    with db.transaction(settings.database_url) as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.target == f"patient:{patient_id}", AuditEvent.action == "update")
            .order_by(AuditEvent.id.desc())
        ).first()
        return event.detail


def test_a_form_edit_leaves_the_fields_it_did_not_send(client, web_settings, pid):
    before = stored(web_settings, pid)
    sent = {"csrf_token": page_csrf(client), "sex": "male"}
    assert client.post(f"/patients/{pid}/edit", data=sent, follow_redirects=False).status_code == 303
    assert stored(web_settings, pid) == before | {"sex": "male"}
    assert last_update(web_settings, pid) == {"sex": "male"}
    cleared = {"csrf_token": page_csrf(client), "city": "", "mrn_issuer": ""}  # sent blank: cleared
    assert client.post(f"/patients/{pid}/edit", data=cleared, follow_redirects=False).status_code == 303
    after = stored(web_settings, pid)
    assert (after["city"], after["lat"], after["lon"], after["mrn_issuer"]) == (None, None, None, None)
    assert (after["birth_date"], after["mrn"], after["language_dominance"]) == ("1961-04-02", before["mrn"], "right")


def test_an_api_edit_leaves_the_fields_it_did_not_send(client, web_settings, pid):
    before = stored(web_settings, pid)
    headers = {"X-CSRF-Token": page_csrf(client)}
    got = client.patch(f"/api/patients/{pid}", json={"dominance": "left", "name": "Edit Renamed"}, headers=headers)
    assert got.status_code == 200
    assert got.json() == stored(web_settings, pid) == before | {"language_dominance": "left", "name": "Edit Renamed"}
    assert last_update(web_settings, pid) == {"language_dominance": "left", "name": "Edit Renamed", "via": "api"}
    got = client.patch(f"/api/patients/{pid}", json={"birth_date": None}, headers=headers)
    assert got.status_code == 200 and got.json()["birth_date"] is None and got.json()["city"] == "York"
    assert client.patch(f"/api/patients/{pid}", json={}, headers=headers).json()["name"] == "Edit Renamed"


def test_an_api_edit_is_checked(client, web_settings, pid):
    headers = {"X-CSRF-Token": page_csrf(client)}
    assert client.patch(f"/api/patients/{pid}", json={"sex": "male"}).status_code == 403  # no CSRF header
    assert client.patch(f"/api/patients/{pid}", json={"colour": "blue"}, headers=headers).status_code == 422
    refused = client.patch(f"/api/patients/{pid}", json={"name": None}, headers=headers)
    assert (refused.status_code, refused.json()) == (400, {"detail": "name is empty", "field": "name"})
    refused = client.patch(f"/api/patients/{pid}", json={"city": "Atlantis-upon-Sea"}, headers=headers)
    assert refused.status_code == 400 and refused.json()["field"] == "city"
    assert client.patch("/api/patients/99999999", json={}, headers=headers).status_code == 404
    with make_client(web_settings) as doc:
        assert sign_in(doc, "doc").status_code == 200
        outside = doc.patch(f"/api/patients/{pid}", json={"sex": "male"}, headers={"X-CSRF-Token": page_csrf(doc)})
        assert outside.status_code == 403  # not on the patient's care team
    assert stored(web_settings, pid)["sex"] == "female"


def test_a_geocoded_city_shows_its_match(client):
    sent = {"csrf_token": page_csrf(client), "name": "Geo Shown", "city": "Leeds"}
    added = client.post("/patients", data=sent, follow_redirects=False)
    assert added.status_code == 303
    page = client.get(added.headers["location"]).text
    assert "Leeds — 53.80, −1.55\n    (GeoNames: Leeds, ENG, GB)" in page
    typed = sent | {"name": "Geo Typed", "lat": "53.81", "lon": "-1.56"}
    page = client.get(client.post("/patients", data=typed, follow_redirects=False).headers["location"]).text
    assert "Leeds — 53.81, −1.56\n    (coordinates as entered)" in page


def test_an_unknown_or_ambiguous_city_is_named_beside_the_field(client, web_settings, pid):
    refused = client.post(
        "/patients", data={"csrf_token": page_csrf(client), "name": "Geo Lost", "city": "Atlantis-upon-Sea"}
    )
    assert refused.status_code == 400
    assert beside(refused.text, "city").startswith("city 'Atlantis-upon-Sea': no town of 5,000+ people of that name")
    assert 'value="Geo Lost"' in refused.text
    edit = {"csrf_token": page_csrf(client), "city": "Birmingham, US"}
    refused = client.post(f"/patients/{pid}/edit", data=edit)
    assert refused.status_code == 400
    assert "towns have that name (Birmingham, AL, US; Birmingham, MI, US" in beside(refused.text, "city")
    assert 'value="Birmingham, US"' in refused.text and 'value="1961-04-02"' in refused.text  # the rest as stored
    assert stored(web_settings, pid)["city"] == "York"
