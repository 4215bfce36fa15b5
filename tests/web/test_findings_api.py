"""The findings API contract: automatic and current state, JSON reviews, re-running the cross-check."""

from __future__ import annotations

import pytest

from neurotriage.clinical import db, intake

from .helpers import add_finding, make_client, page_csrf, sign_in


@pytest.fixture
def finding(web_settings) -> int:
    """A right frontal finding of a patient with left-sided weakness (concordant)."""
    return add_finding(web_settings, "Api Contract")[1]


def headers(client) -> dict[str, str]:
    return {"X-CSRF-Token": page_csrf(client)}


def test_get_gives_the_automatic_and_current_state(client, finding):
    body = client.get(f"/api/findings/{finding}").json()
    assert body["finding_id"] == finding and body["crosscheck_stale"] is False
    assert body["automatic"]["location"]["hemisphere"] == "right" and body["automatic"]["verdict"] == "concordant"
    assert body["current"]["source"] == "automatic" and body["current"]["reviewed_by"] is None
    assert body["reviews"] == [] and {"rank", "doctor", "hospital", "score", "reasons"} <= set(body["referrals"][0])


def test_a_json_review_overriding_the_side_is_current_and_recomputes(client, finding):
    review = {
        "location_decision": "override", "location_override": {"hemisphere": "left", "regions": ["frontal_lobe"]},
        "verdict_decision": "confirm", "comment": "left on review",
    }  # fmt: skip
    made = client.post(f"/api/findings/{finding}/reviews", json=review, headers=headers(client))
    assert made.status_code == 201, made.text
    current = made.json()
    assert current["location"]["hemisphere"] == "left" and current["location"]["regions"] == ["frontal_lobe"]
    assert current["source"] == "clinician" and current["reviewed_by"] == "clin"
    # A left frontal tumour does not explain left-sided weakness: the cross-check was run again.
    assert current["verdict"] != "concordant" and current["crosscheck"]["origin"] == "review"
    body = client.get(f"/api/findings/{finding}").json()
    assert body["current"] == current and body["automatic"]["location"]["hemisphere"] == "right"
    assert body["reviews"][0]["location_decision"] == "override"


def test_a_text_override_is_parsed_and_an_unreadable_one_is_a_422_naming_the_field(client, finding):
    text = {"location_decision": "override", "location_override": "left temporal lobe",
            "verdict_decision": "confirm", "comment": "typed"}  # fmt: skip
    made = client.post(f"/api/findings/{finding}/reviews", json=text, headers=headers(client))
    assert made.status_code == 201 and made.json()["location"]["regions"] == ["temporal_lobe"]
    bad = client.post(
        f"/api/findings/{finding}/reviews", json=text | {"location_override": "somewhere odd"}, headers=headers(client)
    )
    assert bad.status_code == 422 and bad.json()["field"] == "location_override"
    no_token = client.post(f"/api/findings/{finding}/reviews", json=text)
    assert no_token.status_code == 403


def test_rerun_after_a_new_symptom_clears_stale(client, web_settings, finding):
    patient_id = client.get(f"/api/findings/{finding}").json()["patient"]["id"]
    with db.transaction(web_settings.database_url) as session:
        intake.add_symptom(session, patient_id, "aphasia")
    assert client.get(f"/api/findings/{finding}").json()["crosscheck_stale"] is True
    again = client.post(f"/api/findings/{finding}/crosscheck", headers=headers(client))
    assert again.status_code == 200 and again.json()["crosscheck_stale"] is False
    assert again.json()["current"]["crosscheck"]["origin"] == "rerun"


def test_removing_a_symptom_makes_the_crosscheck_stale(client, web_settings, finding):
    patient_id = client.get(f"/api/findings/{finding}").json()["patient"]["id"]
    with db.transaction(web_settings.database_url) as session:
        intake.add_symptom(session, patient_id, "aphasia")
    client.post(f"/api/findings/{finding}/crosscheck", headers=headers(client))
    symptoms = client.get(f"/api/patients/{patient_id}").json()["symptoms"]
    aphasia = next(s["id"] for s in symptoms if s["code"] == "aphasia")
    assert client.delete(f"/api/patients/{patient_id}/symptoms/{aphasia}").status_code == 403  # no CSRF token
    gone = client.delete(f"/api/patients/{patient_id}/symptoms/{aphasia}", headers=headers(client))
    assert gone.status_code == 204
    assert "aphasia" not in [s["code"] for s in client.get(f"/api/patients/{patient_id}").json()["symptoms"]]
    assert client.get(f"/api/findings/{finding}").json()["crosscheck_stale"] is True
    again = client.delete(f"/api/patients/{patient_id}/symptoms/{aphasia}", headers=headers(client))
    assert again.status_code == 400 and again.json()["field"] == "symptom"


def test_a_finding_outside_the_users_patients_is_404(web_settings, finding):
    with make_client(web_settings) as doc:
        sign_in(doc, "doc")
        assert doc.get(f"/api/findings/{finding}").status_code == 404
        token = {"X-CSRF-Token": page_csrf(doc)}
        assert doc.post(f"/api/findings/{finding}/crosscheck", headers=token).status_code == 404
