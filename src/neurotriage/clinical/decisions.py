"""Cross-checks and referrals computed from the database and stored with their inputs.

A stored decision keeps the symptoms, dominance, localisation, rules and ranking parameters it was
computed from, so it can be explained later even after the knowledge base or the data change.
`store_diagnosis` is the entry point for the imaging pipeline (`record_diagnosis` wraps it in a transaction).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy.orm import Session

from neurotriage import NOTICE
from neurotriage.clinical import intake
from neurotriage.clinical.crosscheck import ReportedSymptom, crosscheck, predicted_regions
from neurotriage.clinical.db import transaction
from neurotriage.clinical.knowledge import SymptomDef, knowledge_from_db
from neurotriage.clinical.location import parse_location
from neurotriage.clinical.models import CrossCheckRecord, Finding, Patient, ReferralRecord
from neurotriage.clinical.referral import (
    ReferralRequest,
    needs_for_location,
    needs_for_prediction,
    recommend,
    targets_for_location,
    targets_for_prediction,
)


def _rules_used(symptoms: list[ReportedSymptom], knowledge: dict[str, SymptomDef]) -> dict[str, Any]:
    """The knowledge-base rules of the reported symptoms, as they were at decision time."""
    return {s.code: [asdict(r) for r in knowledge[s.code].rules] for s in symptoms if s.code in knowledge}


def crosscheck_patient(
    session: Session, patient: Patient, locate: dict[str, Any], finding_id: int | None = None
) -> CrossCheckRecord:
    """Cross-check the patient's recorded symptoms against `locate` and store it with its inputs."""
    knowledge = knowledge_from_db(session)
    symptoms = intake.reported_symptoms(session, patient.id)
    result = crosscheck(symptoms, patient.language_dominance, locate, knowledge)
    record = CrossCheckRecord(
        patient_id=patient.id,
        finding_id=finding_id,
        verdict=result["verdict"],
        score=result["score"],
        needs_review=result["needs_review"],
        inputs={
            "symptoms": [asdict(s) for s in symptoms],
            "language_dominance": patient.language_dominance,
            "locate": locate,
            "finding_id": finding_id,
            "rules": _rules_used(symptoms, knowledge),
        },
        result=result,
    )
    session.add(record)
    session.flush()
    return record


def _symptom_request(
    session: Session, patient: Patient, home: tuple[float, float] | None, limit: int
) -> tuple[ReferralRequest, str]:
    """A referral request for the regions the patient's symptoms predict, and those regions."""
    predicted = predicted_regions(
        intake.reported_symptoms(session, patient.id), patient.language_dominance, knowledge_from_db(session)
    )
    request = ReferralRequest(
        "symptoms", targets_for_prediction(predicted), needs_for_prediction(predicted), home, limit
    )
    where = ", ".join(f"{p['side']} {p['name']}" for p in predicted) or "no region (non-localising symptoms)"
    return request, where


def refer_patient(session: Session, patient_id: int, limit: int = 10) -> ReferralRecord:
    """Rank doctors for the patient's latest imaging location (or predicted regions) and store it."""
    patient = intake.get_patient(session, patient_id)
    home = (patient.lat, patient.lon) if patient.lat is not None and patient.lon is not None else None
    finding = intake.latest_finding(session, patient.id)
    check = crosscheck_patient(session, patient, finding.locate, finding.id) if finding else None
    location = parse_location(finding.locate, f"finding {finding.id}") if finding else None
    if location is not None and location.has_tumour:
        request = ReferralRequest(
            "imaging",
            targets_for_location(location),
            needs_for_location(location, patient.language_dominance),
            home,
            limit,
        )
        note = f"ranked for the imaging location ({location.summary()}, finding {finding.id})"
        if check.needs_review:
            note += f"; symptoms are {check.verdict}: flagged for clinician review"
    else:
        request, where = _symptom_request(session, patient, home, limit)
        why = "no imaging finding yet" if finding is None else f"imaging (finding {finding.id}) found no tumour"
        note = f"{why}: ranked for the regions the symptoms predict ({where})"
    outcome = recommend(session, request)
    record = ReferralRecord(
        patient_id=patient.id,
        finding_id=finding.id if finding else None,
        crosscheck_id=check.id if check else None,
        basis=request.basis,
        inputs=request.to_json() | {"patient": intake.patient_summary(patient)},
        result=outcome | {"note": note},
    )
    session.add(record)
    session.flush()
    return record


def referral_report(record: ReferralRecord, check: CrossCheckRecord | None) -> dict[str, Any]:
    """A stored referral as the JSON the CLI and the web app show."""
    return {
        "referral_id": record.id,
        "patient_id": record.patient_id,
        "basis": record.basis,
        "note": record.result["note"],
        "finding_id": record.finding_id,
        "crosscheck": None
        if check is None
        else {
            "id": check.id,
            "verdict": check.verdict,
            "score": check.score,
            "needs_review": check.needs_review,
            "summary": check.result["summary"],
        },
        "targets": record.inputs["targets"],
        "needs": record.inputs["needs"],
        "search_radius_km": record.result["search_radius_km"],
        "recommendations": record.result["recommendations"],
        "notice": NOTICE,
    }


def refer(session: Session, patient_id: int, limit: int = 10) -> dict[str, Any]:
    """Compute, store and report a referral for one patient."""
    record = refer_patient(session, patient_id, limit)
    check = session.get(CrossCheckRecord, record.crosscheck_id) if record.crosscheck_id else None
    return referral_report(record, check)


def store_diagnosis(
    session: Session,
    patient_id: int,
    case_ref: str,
    locate: dict[str, Any],
    model_id: str,
    segmentation_path: str | None = None,
    *,
    provenance: dict[str, Any] | None = None,
    limit: int = 10,
    report_dir: str | None = None,
) -> dict[str, Any]:
    """Store a finding for the patient's study of `case_ref`, its cross-check and a referral in the
    caller's transaction; returns {"finding_id", "study_id", "crosscheck", "referral"}."""
    parse_location(locate)
    study = intake.study_for(session, patient_id, case_ref)
    finding = Finding(
        study_id=study.id,
        segmentation_path=segmentation_path,
        report_dir=report_dir,
        locate=locate,
        model_id=model_id,
        provenance=provenance,
    )
    session.add(finding)
    study.last_error = None
    session.flush()
    report = refer(session, patient_id, limit)
    check = session.get(CrossCheckRecord, report["crosscheck"]["id"])
    return {
        "finding_id": finding.id,
        "study_id": study.id,
        "crosscheck": check.result | {"id": check.id},
        "referral": report,
    }


def record_diagnosis(
    patient_id: int,
    case_ref: str,
    locate: dict[str, Any],
    model_id: str,
    segmentation_path: str | None = None,
    *,
    url: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """`store_diagnosis` in a transaction of its own."""
    with transaction(url) as session:
        return store_diagnosis(session, patient_id, case_ref, locate, model_id, segmentation_path, limit=limit)
