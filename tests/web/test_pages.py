"""Patient pages and forms: list and search, add patient and symptom with validation, API docs."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import func, select

from neurotriage import NOTICE
from neurotriage.clinical import db
from neurotriage.clinical.models import Patient, PatientSymptom
from neurotriage.clinical.mrn import UNCONFIRMED_NOTE, find_or_create_by_mrn
from neurotriage.web.models import AuditEvent

from .helpers import audited, page_csrf

# A command-line flag in the page's text ("--lat"); the random CSRF token may hold "--" too.
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def names_a_flag(html: str) -> bool:
    """Whether the page speaks of a command-line flag outside its form tokens."""
    return bool(FLAG.search(re.sub(r'name="csrf_token" value="[^"]*"', "", html)))


def counts(url: str) -> tuple[int, int]:
    with db.transaction(url) as session:
        return session.scalar(select(func.count(Patient.id))), session.scalar(select(func.count(PatientSymptom.id)))


def beside(html: str, field: str) -> str:
    """The error message shown right after the form control named `field`."""
    found = re.search(
        rf'<input name="{field}"[^>]*> <span class="field-error" id="error-{field}" role="alert">([^<]*)</span>', html
    )
    assert found, f"no error beside {field}"
    return unescape(found.group(1))


def test_add_patient_and_symptom_then_find_them(client, web_settings):
    token = page_csrf(client)
    form = {"csrf_token": token, "name": "Ada Pagetest", "sex": "female", "birth_date": "1961-04-02",
            "city": "York", "lat": "53.96", "lon": "-1.08", "dominance": "right"}  # fmt: skip
    r = client.post("/patients", data=form | {"name": "Ada Pagetest"}, follow_redirects=False)
    assert r.status_code == 303
    path = r.headers["location"]
    r = client.post(f"{path}/symptoms", data={"csrf_token": token, "code": "aphasia", "severity": "moderate"})
    assert r.status_code == 200
    page = client.get(path).text
    assert "Ada Pagetest" in page and "right hemisphere" in page and "moderate" in page and NOTICE in page
    remove = re.search(r'action="(/patients/(\d+)/symptoms/(\d+)/delete)"', page)
    assert client.post(remove.group(1), data={"csrf_token": token}).status_code == 200
    assert "<td>moderate</td>" not in client.get(path).text and "None recorded." in client.get(path).text
    pid, entry = remove.group(2, 3)
    assert audited(web_settings.database_url, "delete", f"patient:{pid}/symptom:{entry}") == [int(pid)]
    assert client.post(f"{path}/symptoms", data={"csrf_token": token, "code": "aphasia"}).status_code == 200
    edit = form | {"name": "Ada Edited", "dominance": "left"}
    assert client.post(f"{path}/edit", data=edit).status_code == 200
    assert "Ada Edited" in client.get(path).text
    refused = client.post(f"{path}/edit", data=edit | {"name": "Ada Broken", "lon": "500"})
    assert refused.status_code == 400 and not names_a_flag(refused.text)
    assert beside(refused.text, "lon") == "longitude '500' is outside -180..180"
    assert 'value="Ada Broken"' in refused.text  # what was typed is kept for correcting
    assert "Ada Edited" in client.get(path).text
    listed = client.get("/patients", params={"q": "EDITED"}).text
    assert "Ada Edited" in listed
    assert "Ada Edited" not in client.get("/patients", params={"q": "no such name"}).text


def test_invalid_forms_are_refused_naming_the_field(client, web_settings):
    token = page_csrf(client)
    before = counts(web_settings.database_url)
    r = client.post("/patients", data={"csrf_token": token, "name": "Bad Lat", "lat": "123", "lon": "0"})
    assert r.status_code == 400 and not names_a_flag(r.text)
    assert beside(r.text, "lat") == "latitude '123' is outside -90..90"
    r = client.post("/patients", data={"csrf_token": token, "name": "Bad Date", "birth_date": "02/04/1961"})
    assert r.status_code == 400 and not names_a_flag(r.text)
    assert beside(r.text, "birth_date") == "birth date '02/04/1961' is not a date (YYYY-MM-DD)"
    r = client.post(
        "/api/patients", json={"name": "Api Lat", "lat": "123", "lon": "0"}, headers={"X-CSRF-Token": token}
    )
    assert (r.status_code, r.json()) == (400, {"detail": "latitude '123' is outside -90..90", "field": "lat"})
    r = client.post("/patients", data={"csrf_token": token})
    assert r.status_code == 400 and beside(r.text, "name") == "name is empty"
    r = client.post("/patients/1/symptoms", data={"csrf_token": token, "code": "not-a-symptom"})
    assert r.status_code == 400 and "not-a-symptom" in r.text
    r = client.post("/patients/1/symptoms", data={"csrf_token": token, "code": "headache", "side": "left"})
    assert r.status_code == 400 and "takes no side" in r.text
    assert client.get("/patients/999999").status_code == 404
    assert counts(web_settings.database_url) == before


def test_api_docs_and_viewer_assets_are_served_locally(client):
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert "/api/patients" in client.get("/api/openapi.json").json()["paths"]
    for asset in ("/static/niivue.js", "/static/swagger/swagger-ui-bundle.js", "/static/viewer.js"):
        assert client.get(asset).status_code == 200, f"{asset} missing: run scripts/build_niivue.sh"


def test_user_text_is_escaped_in_pages(client):
    token = page_csrf(client)
    r = client.post("/patients", data={"csrf_token": token, "name": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)" in r.text


def test_mrn_on_forms_and_search_and_confirming_a_received_patient(client, web_settings):
    token = page_csrf(client)
    form = {"csrf_token": token, "name": "Mo Record", "mrn": "MR-77", "mrn_issuer": "HOSP"}
    added = client.post("/patients", data=form, follow_redirects=False)
    assert added.status_code == 303
    taken = client.post("/patients", data=form | {"name": "Mo Twin"})
    assert taken.status_code == 400 and "Mo Twin" not in client.get("/patients").text
    assert beside(taken.text, "mrn").startswith("MRN 'MR-77' (issuer 'HOSP') already belongs to patient")
    assert "Mo Record" in client.get("/patients", params={"q": "mr-77"}).text
    with db.transaction(web_settings.database_url) as session:
        made, _ = find_or_create_by_mrn(session, mrn="RX-1", issuer=None, name="ROE^RAY", birth_date=None, sex="M")
        pid = made.id
    assert UNCONFIRMED_NOTE in client.get("/patients", params={"q": "RX-1"}).text
    page = client.get(f"/patients/{pid}").text
    assert UNCONFIRMED_NOTE in page and f'action="/patients/{pid}/confirm"' in page
    assert client.post(f"/patients/{pid}/confirm", data={}).status_code == 403
    confirmed = client.post(f"/patients/{pid}/confirm", data={"csrf_token": token}, follow_redirects=False)
    assert confirmed.status_code == 303
    assert UNCONFIRMED_NOTE not in client.get(f"/patients/{pid}").text
    with db.transaction(web_settings.database_url) as session:
        assert session.get(Patient, pid).confirmed
        # The web tests share one database: only this patient's confirmations count here.
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "confirm", AuditEvent.target == f"patient:{pid}")
        ).all()
        assert [(e.target, e.detail) for e in events] == [
            (f"patient:{pid}", {"mrn": "RX-1", "already_confirmed": False})
        ]
