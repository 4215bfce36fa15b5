"""A stored finding decided again (for a clinician's corrected location, or a re-run) keeps why and for whom,
with the symptoms as they are now; symptom and dominance changes are dated, on both backends."""

from __future__ import annotations

import random

from sqlalchemy import select

from neurotriage.anatomy.location import parse_location
from neurotriage.anatomy.override import override_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import CrossCheckRecord, Finding, ReferralRecord
from neurotriage.clinical.sample import add_hospitals_and_doctors

from .locates import locate


def test_a_finding_decided_again_is_stored_with_its_origin_and_todays_symptoms(db_url: str) -> None:
    with db.transaction(db_url) as session:
        add_hospitals_and_doctors(session, n_hospitals=6, n_doctors=30, rng=random.Random(1))
        patient = intake.add_patient(session, "Decided Twice", city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, patient.id, "hemiparesis", side="right")
        automatic = parse_location(locate("right"))
        stored = decisions.store_diagnosis(session, patient.id, "C", automatic, "m", limit=4)
        finding = session.get(Finding, stored["finding_id"])
        intake.add_symptom(session, patient.id, "headache")
        corrected = override_location(automatic, "left", ["frontal_lobe", "primary_motor"])
        check, referral = decisions.decide_again(session, finding, corrected, "review", "dr.ada", review_id=7)
        ids = check.id, referral.id
    with db.transaction(db_url) as session:
        check, referral = session.get(CrossCheckRecord, ids[0]), session.get(ReferralRecord, ids[1])
        first = session.scalar(select(CrossCheckRecord).order_by(CrossCheckRecord.id).limit(1))
        assert (first.origin, first.requested_by, first.verdict) == ("diagnosis", None, "discordant")
        assert (check.origin, check.requested_by, check.verdict) == ("review", "dr.ada", "concordant")
        assert check.inputs["review_id"] == 7 and check.inputs["locate"]["hemisphere"] == "left"
        assert [s["code"] for s in check.inputs["symptoms"]] == ["hemiparesis", "headache"]
        assert (referral.origin, referral.requested_by, referral.crosscheck_id) == ("review", "dr.ada", check.id)
        assert referral.finding_id == stored["finding_id"] and referral.inputs["limit"] == 4


def test_symptom_and_dominance_changes_are_dated(db_url: str) -> None:
    with db.transaction(db_url) as session:
        patient = intake.add_patient(session, "Changing Picture")
        assert patient.clinical_changed_at is None
        intake.add_symptom(session, patient.id, "headache")
        after_symptom = patient.clinical_changed_at
        assert after_symptom is not None
        intake.update_patient(session, patient.id, city="Leeds", lat="53.80", lon="-1.55")
        assert patient.clinical_changed_at == after_symptom  # demographics are not clinical
        intake.update_patient(session, patient.id, dominance="left")  # unchanged
        assert patient.clinical_changed_at == after_symptom
        intake.update_patient(session, patient.id, dominance="right")
        assert patient.clinical_changed_at > after_symptom
        after_dominance = patient.clinical_changed_at
        headache = intake.symptom_entries(session, patient.id)[0]["id"]
        intake.remove_symptom(session, patient.id, headache)
        assert patient.clinical_changed_at > after_dominance
