"""The JSON API's response models keep every key the views build; reports come from the stored folder."""

from __future__ import annotations

import json

import pytest

from neurotriage.clinical import db
from neurotriage.clinical.models import Finding, Patient
from neurotriage.errors import UserError
from neurotriage.web.reviews import check_review
from neurotriage.web.views import finding_view, get_finding, patient_view

from .helpers import add_finding, page_csrf


@pytest.fixture
def finding_id(web_settings, tmp_path) -> int:
    """A stored finding whose report folder holds a report.html and the segmentation."""
    return add_finding(web_settings, "Api Finding", tmp_path)[1]


def as_json(view: dict) -> dict:
    return json.loads(json.dumps(view))


def test_api_answers_are_the_views(client, web_settings, finding_id):
    got_finding = client.get(f"/api/findings/{finding_id}").json()
    with db.transaction(web_settings.database_url) as session:
        view = finding_view(session, finding_id)
        patient = patient_view(session, view["patient"]["id"])
    assert got_finding == as_json(view) and got_finding["referrals"]
    assert client.get(f"/api/patients/{patient['id']}").json() == as_json(patient)


def test_every_api_operation_declares_its_response(client):
    paths = client.get("/api/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            code, ok = next((k, v) for k, v in operation["responses"].items() if k.startswith("2"))
            if code == "204":  # No Content: nothing to declare
                assert "content" not in ok, (method, path)
                continue
            schema = ok["content"]["application/json"]["schema"]
            assert "$ref" in schema or "$ref" in schema.get("items", {}), (method, path)


def test_report_and_segmentation_come_from_the_stored_finding(client, web_settings, finding_id):
    frame = client.get(f"/reports/{finding_id}/report.html")
    assert frame.status_code == 200 and "stored report" in frame.text
    assert client.get(f"/reports/{finding_id}/images/seg.nii.gz").content == b"not really an image"
    with db.transaction(web_settings.database_url) as session:
        session.get(Finding, finding_id).report_dir = None
    missing = client.get(f"/reports/{finding_id}/report.html")
    assert missing.status_code == 400 and "report file is missing" in missing.text


def test_review_is_checked_then_stored(client, finding_id):
    token = page_csrf(client, f"/reports/{finding_id}")
    review = {"csrf_token": token, "location_decision": "override", "location_override": "left parietal",
              "verdict_decision": "confirm", "comment": "seen at MDT"}  # fmt: skip
    assert client.post(f"/reports/{finding_id}/review", data=review).status_code == 200
    signed = client.get(f"/api/findings/{finding_id}").json()["reviews"][0]
    got = (signed["location"], signed["location_hemisphere"], signed["location_regions"], signed["verdict"])
    assert got == ("left parietal lobe", "left", ["parietal_lobe"], "confirmed") and signed["comment"] == "seen at MDT"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (("maybe", "", "confirm", "", "c"), "location_decision"),
        (("override", " ", "confirm", "", "c"), "location_override"),
        (("confirm", "", "override", "fine", "c"), "verdict_override"),
        (("confirm", "", "confirm", "", "  "), "comment"),
    ],
)
def test_check_review_names_the_field(fields, field):
    with pytest.raises(UserError, match=f"^{field}: ") as caught:
        check_review(*fields)
    assert caught.value.field == field


def test_a_finding_of_an_unconfirmed_patient_has_a_provisional_referral(client, web_settings, finding_id):
    with db.transaction(web_settings.database_url) as session:
        finding, study = get_finding(session, finding_id)
        session.get(Patient, study.patient_id).confirmed = False
        pid = study.patient_id
    got = client.get(f"/api/findings/{finding_id}").json()
    assert got["patient"]["confirmed"] is False
    assert got["referral_status"] == "provisional: the patient is not confirmed yet"
    assert "provisional: the patient is not confirmed yet" in client.get(f"/reports/{finding_id}").text
    token = page_csrf(client)
    assert client.post(f"/api/patients/{pid}/confirm").status_code == 403
    done = client.post(f"/api/patients/{pid}/confirm", headers={"X-CSRF-Token": token})
    assert done.status_code == 200 and done.json()["confirmed"] is True
    assert client.get(f"/api/findings/{finding_id}").json()["referral_status"] != got["referral_status"]
