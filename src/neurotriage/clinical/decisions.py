"""Cross-checks and referrals: computed from the database (`decide`), then stored with their inputs.

A stored decision keeps the symptoms, dominance, localisation, rules and ranking parameters it was
computed from, so it can be explained later even after the knowledge base or the data change.
`decide` only reads, so a caller can render a report from its result before opening the
transaction that stores it (`store_decision`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage import NOTICE
from neurotriage.anatomy.location import Location
from neurotriage.clinical import intake
from neurotriage.clinical.crosscheck import CrossCheck, ReportedSymptom, crosscheck, predicted_regions
from neurotriage.clinical.db import transaction
from neurotriage.clinical.knowledge import SymptomDef, knowledge_from_db
from neurotriage.clinical.models import CrossCheckRecord, Finding, ReferralRecord, Study
from neurotriage.clinical.referral import (
    Ranking,
    ReferralRequest,
    needs_for_location,
    needs_for_prediction,
    recommend,
    targets_for_location,
    targets_for_prediction,
)
from neurotriage.clinical.reviewed import reviewed_location
from neurotriage.clinical.snapshot import PatientSnapshot, load_patient
from neurotriage.vocabulary import area_name


@dataclass(frozen=True)
class Decision:
    """A cross-check (when there is a location) and a ranking for one patient, not yet stored."""

    patient: PatientSnapshot
    location: Location | None
    crosscheck: CrossCheck | None
    crosscheck_inputs: dict[str, Any] | None
    request: ReferralRequest
    ranking: Ranking
    # For symptom-based rankings: the regions the symptoms predict, as text.
    predicted: str = ""

    def note(self, finding_id: int | None) -> str:
        """Why the ranking is for what it is for, naming the finding once it has an id."""
        location, check = self.location, self.crosscheck
        if location is not None and location.has_tumour:
            review = f"; symptoms are {check.verdict}: flagged for clinician review" if check.needs_review else ""
            return f"ranked for the imaging location ({location.site()}, finding {finding_id}){review}"
        why = "no imaging finding yet" if location is None else f"imaging (finding {finding_id}) found no tumour"
        return f"{why}: ranked for the regions the symptoms predict ({self.predicted})"


def _rules_used(symptoms: list[ReportedSymptom], knowledge: dict[str, SymptomDef]) -> dict[str, Any]:
    """The knowledge-base rules of the reported symptoms, as they were at decision time."""
    return {s.code: [asdict(r) for r in knowledge[s.code].rules] for s in symptoms if s.code in knowledge}


def _check(
    patient: PatientSnapshot, location: Location, knowledge: dict[str, SymptomDef]
) -> tuple[CrossCheck, dict[str, Any]]:
    """The cross-check and the inputs stored beside it."""
    symptoms = patient.reported()
    inputs = {
        "symptoms": [asdict(s) for s in symptoms],
        "language_dominance": patient.language_dominance,
        "locate": location.model_dump(mode="json"),
        "rules": _rules_used(symptoms, knowledge),
    }
    return crosscheck(symptoms, patient.language_dominance, location, knowledge), inputs


def _imaging_request(patient: PatientSnapshot, location: Location, limit: int) -> ReferralRequest:
    return ReferralRequest(
        "imaging",
        targets_for_location(location),
        needs_for_location(location, patient.language_dominance),
        patient.home,
        limit,
    )


def _symptom_request(
    patient: PatientSnapshot, knowledge: dict[str, SymptomDef], limit: int
) -> tuple[ReferralRequest, str]:
    predicted = predicted_regions(patient.reported(), patient.language_dominance, knowledge)
    request = ReferralRequest(
        "symptoms", targets_for_prediction(predicted), needs_for_prediction(predicted), patient.home, limit
    )
    where = ", ".join(f"{p.side} {area_name(p.name)}" for p in predicted)
    return request, where or "no region (non-localising symptoms)"


def decide(session: Session, patient: PatientSnapshot, location: Location | None, limit: int = 10) -> Decision:
    """Cross-check the patient's symptoms against `location` and rank doctors for it; reads only.

    Without a location, or for a scan without tumour, the ranking is for the regions the symptoms
    predict."""
    knowledge = knowledge_from_db(session, {s.code for s in patient.symptoms})
    check, inputs = _check(patient, location, knowledge) if location is not None else (None, None)
    predicted = ""
    if location is not None and location.has_tumour:
        request = _imaging_request(patient, location, limit)
    else:
        request, predicted = _symptom_request(patient, knowledge, limit)
    ranking = recommend(session, request)
    return Decision(patient, location, check, inputs, request, ranking, predicted)


def store_crosscheck(
    session: Session,
    patient_id: int,
    check: CrossCheck,
    inputs: dict[str, Any],
    finding_id: int | None,
    *,
    origin: str = "diagnosis",
    requested_by: str | None = None,
) -> CrossCheckRecord:
    """Store a cross-check with the inputs it was computed from; `origin` and `requested_by` as in
    `store_decision`."""
    record = CrossCheckRecord(
        patient_id=patient_id,
        finding_id=finding_id,
        verdict=check.verdict,
        score=check.score,
        needs_review=check.needs_review,
        inputs=inputs | {"finding_id": finding_id},
        result=check.model_dump(mode="json"),
        origin=origin,
        requested_by=requested_by,
    )
    session.add(record)
    session.flush()
    return record


def store_decision(
    session: Session,
    decision: Decision,
    finding_id: int | None,
    *,
    origin: str = "diagnosis",
    requested_by: str | None = None,
) -> tuple[CrossCheckRecord | None, ReferralRecord]:
    """Store a decision's cross-check and referral in the caller's transaction; `origin` says why they were
    computed (diagnosis, or again for a clinician's review or re-run) and `requested_by` who asked."""
    origin_columns = {"origin": origin, "requested_by": requested_by}
    check = None
    if decision.crosscheck is not None:
        check = store_crosscheck(
            session, decision.patient.id, decision.crosscheck, decision.crosscheck_inputs, finding_id, **origin_columns
        )
    patient = decision.patient.model_dump(mode="json", exclude={"symptoms"})
    record = ReferralRecord(
        patient_id=decision.patient.id,
        finding_id=finding_id,
        crosscheck_id=check.id if check else None,
        basis=decision.request.basis,
        inputs=decision.request.to_json() | {"patient": patient},
        result=decision.ranking.model_dump(mode="json") | {"note": decision.note(finding_id)},
        **origin_columns,
    )
    session.add(record)
    session.flush()
    return check, record


def crosscheck_patient(
    session: Session, patient: PatientSnapshot, location: Location, finding_id: int | None = None
) -> CrossCheckRecord:
    """Cross-check the patient's recorded symptoms against `location` and store it with its inputs."""
    check, inputs = _check(patient, location, knowledge_from_db(session, {s.code for s in patient.symptoms}))
    return store_crosscheck(session, patient.id, check, inputs, finding_id)


def decide_again(
    session: Session, finding: Finding, location: Location, origin: str, requested_by: str, **inputs: Any
) -> tuple[CrossCheckRecord | None, ReferralRecord]:
    """Cross-check and refer a stored finding again, at `location`, with the patient's symptoms and dominance
    as they are now, and store both as asked for by `requested_by` (origin: review or rerun) in the caller's
    transaction. `inputs` are stored with the cross-check's inputs (the review whose location it used)."""
    study = session.get(Study, finding.study_id)
    last = session.scalar(
        select(ReferralRecord.inputs).where(ReferralRecord.finding_id == finding.id).order_by(ReferralRecord.id.desc())
    )
    decision = decide(session, load_patient(session, study.patient_id), location, (last or {}).get("limit", 10))
    if decision.crosscheck_inputs is not None:
        decision = replace(decision, crosscheck_inputs=decision.crosscheck_inputs | inputs)
    return store_decision(session, decision, finding.id, origin=origin, requested_by=requested_by)


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
    """Decide and store a referral for the patient's latest imaging finding (or their symptoms), at the
    location its newest clinician review gives."""
    patient = load_patient(session, patient_id)
    finding = intake.latest_finding(session, patient_id)
    location = reviewed_location(session, finding) if finding else None
    check, record = store_decision(session, decide(session, patient, location, limit), finding.id if finding else None)
    return referral_report(record, check)


def store_finding(
    session: Session,
    patient_id: int,
    case_ref: str,
    location: Location,
    model_id: str,
    **columns: Any,
) -> Finding:
    """Store a finding for the patient's study of `case_ref` (created when new) in the caller's transaction.

    `columns` are further Finding columns: key, segmentation_path, report_dir, provenance."""
    study = intake.study_for(session, patient_id, case_ref)
    declared = (columns.get("provenance") or {}).get("raw_study_date")
    if study.study_date is None and declared:
        study.study_date = date.fromisoformat(declared)
    finding = Finding(study_id=study.id, locate=location.model_dump(mode="json"), model_id=model_id, **columns)
    session.add(finding)
    study.last_error = None
    session.flush()
    return finding


def stored_summary(finding: Finding, check: CrossCheckRecord | None, record: ReferralRecord) -> dict[str, Any]:
    """What storing a finding with its decisions returns: ids, the cross-check and the referral."""
    return {
        "finding_id": finding.id,
        "study_id": finding.study_id,
        "crosscheck": check.result | {"id": check.id} if check else None,
        "referral": referral_report(record, check),
    }


def store_diagnosis(
    session: Session,
    patient_id: int,
    case_ref: str,
    location: Location,
    model_id: str,
    *,
    limit: int = 10,
    **columns: Any,
) -> dict[str, Any]:
    """Store a finding (further Finding `columns` as in `store_finding`), its cross-check and a referral
    in the caller's transaction."""
    patient = load_patient(session, patient_id)
    finding = store_finding(session, patient_id, case_ref, location, model_id, **columns)
    check, record = store_decision(session, decide(session, patient, location, limit), finding.id)
    return stored_summary(finding, check, record)


def record_diagnosis(
    patient_id: int,
    case_ref: str,
    location: Location,
    model_id: str,
    segmentation_path: str | None = None,
    *,
    url: str | None = None,
    limit: int = 10,
) -> dict[str, Any]:
    """`store_diagnosis` in a transaction of its own."""
    with transaction(url) as session:
        return store_diagnosis(
            session, patient_id, case_ref, location, model_id, limit=limit, segmentation_path=segmentation_path
        )
