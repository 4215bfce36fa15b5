"""Clinicians' reviews take effect: a location override re-runs the cross-check and the referral and becomes the
current state on the report page, the patient page, the API and report.json; reviews form a history with one
current state; a cross-check goes stale when symptoms or dominance change and a re-run brings it up to date;
read-only users and users outside the care team change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurotriage import NOTICE
from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import CrossCheckRecord, Finding, Hospital, ReferralRecord, Review
from neurotriage.maintenance.check import check
from neurotriage.report.fhir import build_fhir_bundle
from neurotriage.report.inputs import ReportInput
from neurotriage.web import access

from ..clinical.locates import locate
from .helpers import audited, page_csrf
from .test_access import READ_ONLY, new_user, signed_in

WEAKNESS_IN_MOTOR_AREA = {"location_hemisphere": "left", "location_regions": ["frontal_lobe", "primary_motor"]}


def store_finding(settings, folder: Path, name: str, location: dict, symptoms: tuple[tuple[str, str | None], ...]):
    """A patient with `symptoms` and a finding at `location` whose report folder holds a report.json naming it:
    (patient id, finding id)."""
    with db.transaction(settings.database_url) as session:
        patient = intake.add_patient(session, name, city="Leeds", lat="53.80", lon="-1.55")
        for code, side in symptoms:
            intake.add_symptom(session, patient.id, code, side=side)
        stored = decisions.store_diagnosis(
            session, patient.id, "C", parse_location(location), "m", report_dir=str(folder)
        )
        key = session.get(Finding, stored["finding_id"]).key
    (folder / "report.html").write_text("<p>stored report</p>", encoding="utf-8")
    report = {"notice": NOTICE, "finding_key": key, "crosscheck": stored["crosscheck"], "files": ["report.html"]}
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return patient.id, stored["finding_id"]


@pytest.fixture
def weak_right(web_settings, tmp_path) -> tuple[int, int]:
    """Right-sided weakness, and imaging that puts the tumour in the right frontal lobe and motor cortex: the
    wrong side for it, so the cross-check is discordant and flagged. (patient id, finding id)"""
    return store_finding(web_settings, tmp_path, "Weak Right", locate("right"), (("hemiparesis", "right"),))


def review(client, finding_id: int, **fields) -> None:
    """Post a review through the report page's form; it must be accepted."""
    form = {"location_decision": "confirm", "verdict_decision": "confirm", "comment": "seen at MDT"} | fields
    posted = client.post(f"/reports/{finding_id}/review", data={"csrf_token": page_csrf(client)} | form)
    assert posted.status_code == 200 and posted.url.path == f"/reports/{finding_id}", posted.text


def finding(client, finding_id: int) -> dict:
    got = client.get(f"/api/findings/{finding_id}")
    assert got.status_code == 200
    return got.json()


def newest(url: str, model, finding_id: int):
    with db.transaction(url) as session:
        row = session.scalar(select(model).where(model.finding_id == finding_id).order_by(model.id.desc()))
        session.expunge(row)
        return row


def test_a_location_override_is_the_current_state_everywhere(client, web_settings, weak_right, tmp_path):
    pid, fid = weak_right
    before = finding(client, fid)
    assert (before["verdict"], before["needs_review"], before["current"]["source"]) == ("discordant", True, "automatic")
    assert before["referral_status"] == "provisional: awaiting clinician sign-off"

    review(client, fid, location_decision="override", **WEAKNESS_IN_MOTOR_AREA)
    after = finding(client, fid)
    current = after["current"]
    assert current["location"] == {
        "hemisphere": "left",
        "regions": ["frontal_lobe", "primary_motor"],
        "summary": "Left frontal lobe, primary motor cortex (clinician), 30.0 ml whole tumour.",
        "source": "clinician",
    }
    # The left motor cortex explains right-sided weakness: the cross-check computed again says so.
    verdict = (current["verdict"], current["verdict_source"], current["source"])
    assert verdict == ("concordant", "automatic", "clinician")
    assert (current["reviewed_by"], after["verdict"], after["needs_review"]) == ("clin", "concordant", False)
    assert after["referral_status"] == "final" and after["summary"] == current["location"]["summary"]
    assert (after["automatic"]["location"]["hemisphere"], after["automatic"]["verdict"]) == ("right", "discordant")
    assert (current["crosscheck"]["origin"], current["crosscheck"]["requested_by"]) == ("review", "clin")

    check_row = newest(web_settings.database_url, CrossCheckRecord, fid)
    referral = newest(web_settings.database_url, ReferralRecord, fid)
    assert (referral.origin, referral.requested_by, referral.crosscheck_id) == ("review", "clin", check_row.id)
    assert check_row.inputs["locate"]["hemisphere"] == "left"
    assert {(r["name"], r["side"]) for r in check_row.inputs["locate"]["regions"]} == {
        ("frontal_lobe", "left"),
        ("primary_motor", "left"),
    }
    assert check_row.inputs["review_id"] == after["reviews"][0]["id"]
    assert audited(web_settings.database_url, "review", f"finding:{fid}") == [pid]

    for page in (client.get(f"/reports/{fid}").text, client.get(f"/patients/{pid}").text):
        assert "Left frontal lobe, primary motor cortex (clinician)" in page
        assert "clinician override by clin" in page and "Flagged for clinician review" not in page
    assert '<strong id="verdict" class="verdict ">concordant</strong>' in client.get(f"/reports/{fid}").text
    patient = client.get(f"/api/patients/{pid}").json()
    assert patient["findings"][0]["current"] == current

    stored = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert stored["clinician_review"]["current"] == current
    assert stored["clinician_review"]["referral"]["id"] == referral.id
    assert [r["status"] for r in stored["clinician_review"]["reviews"]] == ["current"]
    assert stored["files"] == ["report.html"] and stored["crosscheck"]["verdict"] == "discordant"  # as diagnosed
    problems = check(web_settings.database_url, roots=[]).problems
    assert [p for p in problems if p.finding_id == fid] == []


def test_refer_after_an_override_decides_at_the_reviewed_location(client, web_settings, weak_right):
    pid, fid = weak_right
    review(client, fid, location_decision="override", **WEAKNESS_IN_MOTOR_AREA)
    current = finding(client, fid)["current"]
    with db.transaction(web_settings.database_url) as session:
        report = decisions.refer(session, pid)  # `neurotriage refer`, after the clinician moved the tumour left
    check_row = newest(web_settings.database_url, CrossCheckRecord, fid)
    assert (check_row.verdict, check_row.inputs["locate"]["hemisphere"]) == ("concordant", "left")
    assert {r["side"] for r in check_row.inputs["locate"]["regions"]} == {"left"}  # never the imaging side
    assert report["crosscheck"]["verdict"] == "concordant"
    after = finding(client, fid)
    assert after["current"]["location"] == current["location"] and after["verdict"] == "concordant"
    assert after["current"]["crosscheck"]["id"] == check_row.id  # refer's decision is the current one
    referral = newest(web_settings.database_url, ReferralRecord, fid)
    assert (referral.id, referral.crosscheck_id) == (report["referral_id"], check_row.id)


def test_the_stored_report_is_headed_by_the_override(client, weak_right, tmp_path):
    _, fid = weak_right
    (tmp_path / "report.html").write_text("<html><body class='r'><p>right frontal</p></body></html>", encoding="utf-8")
    assert 'id="clinician-review"' not in client.get(f"/reports/{fid}/report.html").text
    review(client, fid, location_decision="override", **WEAKNESS_IN_MOTOR_AREA)
    html = client.get(f"/reports/{fid}/report.html").text  # also the downloads page's print view
    assert html.startswith("<html><body class='r'><p id=\"clinician-review\"")
    banner = html[: html.index("</p>")]
    assert "Clinician review by clin at 20" in banner and "Verdict: concordant." in banner
    assert "Left frontal lobe, primary motor cortex (clinician)" in banner and "superseded" in banner
    assert html.endswith("<p>right frontal</p></body></html>")  # the stored report itself is unchanged


def with_fhir_bundle(folder: Path, patient_id: int) -> dict:
    """Give the stored report a FHIR bundle of the imaging result (right frontal), as diagnose --fhir does."""
    patient = {"id": str(patient_id), "name": "Weak Right"}
    written = build_fhir_bundle(ReportInput.model_validate({"patient": patient, "locate": locate("right")}))
    (folder / "fhir_bundle.json").write_text(json.dumps(written), encoding="utf-8")
    stored = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    files = {"files": ["fhir_bundle.json", "report.html"], "patient": patient}
    (folder / "report.json").write_text(json.dumps(stored | files), encoding="utf-8")
    return written


def reviewed_resources(client, finding_id: int) -> dict:
    got = client.get(f"/reports/{finding_id}/files/fhir_bundle_reviewed.json")
    assert got.status_code == 200
    return {e["resource"]["resourceType"]: e["resource"] for e in got.json()["entry"]}


def test_after_an_override_the_fhir_bundle_follows_the_review(client, weak_right, tmp_path):
    pid, fid = weak_right
    written = with_fhir_bundle(tmp_path, pid)
    link = f'href="/reports/{fid}/files/fhir_bundle.json" download>FHIR R4 bundle'
    assert f"{link}</a>" in client.get(f"/reports/{fid}").text

    review(client, fid, location_decision="override", **WEAKNESS_IN_MOTOR_AREA)
    page = client.get(f"/reports/{fid}").text
    assert f"{link} (as generated at diagnosis, superseded)</a>" in page
    assert f'href="/reports/{fid}/files/fhir_bundle_reviewed.json" download>FHIR R4 bundle, as reviewed</a>' in page
    resources = reviewed_resources(client, fid)
    assert json.loads((tmp_path / "fhir_bundle.json").read_text()) == written  # the diagnosis's, unchanged
    side = resources["BodyStructure"]["locationQualifier"][0]["coding"][0]
    assert (side["code"], side["display"]) == ("7771000", "Left")  # SNOMED CT left: the clinician's side
    report = resources["DiagnosticReport"]
    assert report["status"] == "amended" and "Clinician review by clin at 20" in report["conclusion"]
    assert "Left frontal lobe" in report["conclusion"] and "Cross-check: concordant." in report["conclusion"]


def test_a_confirmation_makes_the_reviewed_bundle_final_at_the_imaging_side(client, weak_right, tmp_path):
    pid, fid = weak_right
    with_fhir_bundle(tmp_path, pid)
    review(client, fid)  # location and verdict confirmed
    resources = reviewed_resources(client, fid)
    assert resources["BodyStructure"]["locationQualifier"][0]["coding"][0]["display"] == "Right"
    report = resources["DiagnosticReport"]
    assert report["status"] == "final" and "confirms the automatic result" in report["conclusion"]


def test_a_damaged_fhir_bundle_holds_up_no_review(client, weak_right, tmp_path):
    pid, fid = weak_right
    with_fhir_bundle(tmp_path, pid)
    (tmp_path / "fhir_bundle.json").write_text('{"resourceType": "Bund', encoding="utf-8")
    review(client, fid, location_decision="override", **WEAKNESS_IN_MOTOR_AREA)
    assert finding(client, fid)["current"]["location"]["hemisphere"] == "left"
    assert not (tmp_path / "fhir_bundle_reviewed.json").exists()


def test_a_right_override_leaves_right_sided_weakness_unexplained(client, weak_right):
    _, fid = weak_right
    review(client, fid, location_decision="override", location_hemisphere="right",
           location_regions=["frontal_lobe", "primary_motor"])  # fmt: skip
    after = finding(client, fid)
    assert (after["current"]["location"]["hemisphere"], after["verdict"]) == ("right", "discordant")
    assert after["needs_review"] is True  # computed for the corrected location, not yet seen by anyone


def test_reviews_form_a_history_with_one_current_state(client, web_settings, weak_right):
    pid, fid = weak_right
    assert "keeps the automatic result" not in client.get(f"/reports/{fid}").text
    review(client, fid, verdict_decision="override", verdict_override="concordant", comment="weakness is old")
    overridden = finding(client, fid)
    assert (overridden["verdict"], overridden["needs_review"], overridden["referral_status"]) == (
        "concordant",
        False,
        "final",
    )
    assert overridden["current"]["verdict_source"] == "clinician"
    page = client.get(f"/reports/{fid}").text
    assert ">concordant</strong>" in page and "(computed: discordant)" in page
    assert "Flagged for clinician review" not in page and ">discordant</strong>" not in page
    assert "this report keeps the automatic result" in page  # the stored report.html below is not rewritten

    with db.transaction(web_settings.database_url) as session:
        access.add_to_team(session, pid, "doc", None)
    with signed_in(web_settings, "doc") as doc:
        review(doc, fid, comment="agree")  # confirms what is current: the clinician's verdict
    confirmed = finding(client, fid)
    assert [(r["by"], r["status"], r["verdict"]) for r in confirmed["reviews"]] == [
        ("doc", "current", "confirmed (concordant)"),
        ("clin", "superseded", "concordant"),
    ]
    assert (confirmed["verdict"], confirmed["current"]["reviewed_by"]) == ("concordant", "doc")

    review(client, fid, verdict_decision="override", verdict_override="discordant", comment="on reflection")
    last = finding(client, fid)
    assert [r["status"] for r in last["reviews"]] == ["current", "superseded", "superseded"]
    assert (last["verdict"], last["needs_review"], last["referral_status"]) == ("discordant", False, "final")
    page = client.get(f"/reports/{fid}").text
    assert page.count("(current)") == 1 and page.count("(superseded)") == 2


def test_a_corrected_location_on_eloquent_cortex_changes_the_referral(client, web_settings, tmp_path):
    no_eloquent = locate("right", regions=(("frontal_lobe", 26.0),), eloquent=())
    _, fid = store_finding(web_settings, tmp_path, "Quiet Frontal", no_eloquent, ())
    before = finding(client, fid)["referrals"]
    # Broca's area on the non-dominant side needs no awake craniotomy; on the dominant (left) side it does.
    review(client, fid, location_decision="override", location_hemisphere="right",
           location_regions=["frontal_lobe", "broca"])  # fmt: skip
    needs = {n["code"] for n in newest(web_settings.database_url, ReferralRecord, fid).inputs["needs"]}
    assert "awake_craniotomy" not in needs
    review(client, fid, location_decision="override", location_hemisphere="left",
           location_regions=["frontal_lobe", "broca"])  # fmt: skip
    referral = newest(web_settings.database_url, ReferralRecord, fid)
    assert "awake_craniotomy" in {n["code"] for n in referral.inputs["needs"]}
    after = finding(client, fid)["referrals"]
    assert [r["doctor"] for r in after] != [r["doctor"] for r in before]
    awake = [[reason for reason in r["reasons"] if reason.startswith("awake craniotomy")] for r in after]
    assert all(awake) and not any("awake craniotomy" in reason for r in before for reason in r["reasons"])
    with db.transaction(web_settings.database_url) as session:
        capable = {h.name for h in session.scalars(select(Hospital)) if "awake_craniotomy" in h.capabilities}
    assert [r["hospital"] in capable for r in after] == [": yes " in found[0] for found in awake]


def test_a_cross_check_goes_stale_and_a_rerun_brings_it_up_to_date(client, web_settings, weak_right):
    pid, fid = weak_right
    token = page_csrf(client)
    added = client.post(f"/patients/{pid}/symptoms", data={"csrf_token": token, "code": "headache"})
    assert added.status_code == 200
    stale = finding(client, fid)
    assert stale["crosscheck_stale"] is True and stale["referral_status"].startswith("provisional: symptoms or")
    for path in (f"/reports/{fid}", f"/patients/{pid}"):
        page = client.get(path).text
        assert "Stale: the patient's symptoms or language dominance changed" in page and "Re-run cross-check" in page

    rerun = client.post(f"/reports/{fid}/crosscheck", data={"csrf_token": token, "back": "patient"})
    assert rerun.status_code == 200 and rerun.url.path == f"/patients/{pid}"
    fresh = finding(client, fid)
    assert fresh["crosscheck_stale"] is False and "Re-run cross-check" not in client.get(f"/reports/{fid}").text
    computed = fresh["current"]["crosscheck"]
    assert (computed["origin"], computed["requested_by"]) == ("rerun", "clin")
    check_row = newest(web_settings.database_url, CrossCheckRecord, fid)
    assert [s["code"] for s in check_row.inputs["symptoms"]] == ["hemiparesis", "headache"]
    assert audited(web_settings.database_url, "rerun", f"finding:{fid}") == [pid]
    banner = client.get(f"/reports/{fid}/report.html").text.split("</p>")[0]
    assert f"Cross-check computed again at {computed['at']}. Now: " in banner and "superseded" in banner

    with db.transaction(web_settings.database_url) as session:
        intake.update_patient(session, pid, name="Weak Right Renamed")  # not clinical: still up to date
    assert finding(client, fid)["crosscheck_stale"] is False
    with db.transaction(web_settings.database_url) as session:
        intake.update_patient(session, pid, dominance="right")
    assert finding(client, fid)["crosscheck_stale"] is True


def test_a_rerun_keeps_the_corrected_location_and_asks_for_a_fresh_look(client, web_settings, weak_right):
    pid, fid = weak_right
    review(client, fid, location_decision="override", verdict_decision="override", verdict_override="concordant",
           **WEAKNESS_IN_MOTOR_AREA)  # fmt: skip
    with db.transaction(web_settings.database_url) as session:
        intake.add_symptom(session, pid, "hemiparesis", side="left")  # the left motor cortex cannot explain it
    token = page_csrf(client)
    assert client.post(f"/reports/{fid}/crosscheck", data={"csrf_token": token}).url.path == f"/reports/{fid}"
    after = finding(client, fid)
    location = after["current"]["location"]
    assert (location["hemisphere"], location["source"]) == ("left", "clinician")
    assert (after["verdict"], after["current"]["verdict_source"]) == ("partially concordant", "automatic")
    assert after["needs_review"] is True and after["referral_status"] == "provisional: awaiting clinician sign-off"
    check_row = newest(web_settings.database_url, CrossCheckRecord, fid)
    assert check_row.inputs["locate"]["hemisphere"] == "left" and check_row.origin == "rerun"
    review(client, fid, comment="both sides explained by the bilateral disease")  # signs the new verdict off
    assert finding(client, fid)["referral_status"] == "final"


def test_read_only_users_and_outsiders_change_nothing(client, web_settings, weak_right):
    pid, fid = weak_right
    new_user(web_settings, "ro_review", "read_only")
    with db.transaction(web_settings.database_url) as session:
        access.add_to_team(session, pid, "ro_review", None)
        intake.add_symptom(session, pid, "headache")  # stale: the re-run button would be offered to a writer
    form = {"location_decision": "override", "verdict_decision": "confirm", "comment": "x"} | WEAKNESS_IN_MOTOR_AREA
    with signed_in(web_settings, "ro_review") as reader:
        shown = reader.get(f"/reports/{fid}").text + reader.get(f"/patients/{pid}").text
        assert "Stale" in shown and 'id="review"' not in shown and "Re-run cross-check" not in shown
        token = page_csrf(reader)
        for path, data in ((f"/reports/{fid}/review", form), (f"/reports/{fid}/crosscheck", {})):
            refused = reader.post(path, data={"csrf_token": token} | data)
            assert refused.status_code == 403 and READ_ONLY in refused.text
    new_user(web_settings, "outsider_review")
    with signed_in(web_settings, "outsider_review") as outsider:
        token = page_csrf(outsider)
        for path, data in ((f"/reports/{fid}/review", form), (f"/reports/{fid}/crosscheck", {})):
            assert outsider.post(path, data={"csrf_token": token} | data).status_code == 403
    assert client.post(f"/reports/{fid}/crosscheck", data={}).status_code == 403  # no CSRF token
    with db.transaction(web_settings.database_url) as session:
        assert not session.scalar(select(func.count(Review.id)).where(Review.finding_id == fid))
        origins = session.scalars(select(CrossCheckRecord.origin).where(CrossCheckRecord.finding_id == fid))
        assert list(origins) == ["diagnosis"]


def test_an_unreadable_override_is_refused_naming_the_field(client, weak_right):
    _, fid = weak_right
    token = page_csrf(client)
    base = {"csrf_token": token, "location_decision": "override", "verdict_decision": "confirm", "comment": "x"}
    for extra, field in (({}, "location_override"), ({"location_hemisphere": "left"}, "location_regions"),
                         ({"location_override": "somewhere frontal"}, "location_override")):  # fmt: skip
        refused = client.post(f"/reports/{fid}/review", data=base | extra)
        assert refused.status_code == 400 and f"{field}:" in refused.text
    assert finding(client, fid)["reviews"] == []
