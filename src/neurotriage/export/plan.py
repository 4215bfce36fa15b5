"""What an export holds, read from the database in one transaction: each diagnosed study's latest
finding, its cross-check, and the patient's identifiers (kept to check the export, never exported)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import CrossCheckRecord, Finding, Patient, Study, Symptom
from neurotriage.errors import UserError


@dataclass(frozen=True)
class PatientRecord:
    """A patient's fields: those that identify them (for the check) and those the export keeps."""

    id: int
    name: str
    birth_date: date | None
    mrn: str | None
    city: str | None
    sex: str
    language_dominance: str


@dataclass(frozen=True)
class CodedSymptom:
    """A symptom the cross-check used: the project's code, its SNOMED CT code and its side."""

    code: str
    snomed: str | None
    side: str | None


@dataclass(frozen=True)
class StudyRecord:
    """One diagnosed study with its latest finding and that finding's cross-check."""

    patient: PatientRecord
    study_id: int
    study_date: date | None
    case_ref: str
    finding_id: int
    segmentation_path: str | None
    report_dir: str | None
    locate: dict[str, Any]
    model_id: str
    provenance: dict[str, Any] | None
    verdict: str | None
    symptoms: tuple[CodedSymptom, ...]


def _patient(row: Patient) -> PatientRecord:
    return PatientRecord(row.id, row.name, row.birth_date, row.mrn, row.city, row.sex, row.language_dominance)


def _latest_findings(session: Session, patient_ids: Sequence[int] | None) -> list[tuple[Finding, Study, Patient]]:
    """The newest finding of every study (of these patients), by patient and study id."""
    query = select(Finding, Study, Patient).join(Study, Study.id == Finding.study_id).join(Patient)
    if patient_ids is not None:
        query = query.where(Study.patient_id.in_(patient_ids))
    latest: dict[int, tuple[Finding, Study, Patient]] = {}
    for finding, study, patient in session.execute(query.order_by(Finding.id)):
        latest[study.id] = (finding, study, patient)
    return sorted(latest.values(), key=lambda row: (row[2].id, row[1].id))


def _crosschecks(session: Session, finding_ids: list[int]) -> dict[int, CrossCheckRecord]:
    """The newest cross-check of each finding."""
    rows = session.scalars(
        select(CrossCheckRecord).where(CrossCheckRecord.finding_id.in_(finding_ids)).order_by(CrossCheckRecord.id)
    )
    return {row.finding_id: row for row in rows}


def _symptoms(check: CrossCheckRecord | None, snomed: dict[str, str | None]) -> tuple[CodedSymptom, ...]:
    """The symptoms a cross-check was computed from, coded from the knowledge base."""
    entries = check.inputs.get("symptoms", []) if check is not None else []
    return tuple(CodedSymptom(s["code"], snomed.get(s["code"]), s.get("side")) for s in entries)


def _check_known(session: Session, patient_ids: Sequence[int]) -> None:
    """Refuse a requested patient who does not exist."""
    for patient_id in patient_ids:
        try:
            intake.get_patient(session, patient_id)
        except UserError as exc:
            raise UserError(exc.message, field="patients") from None


def _check_diagnosed(patient_ids: Sequence[int], found: set[int]) -> None:
    """Refuse a requested patient who has no diagnosed study."""
    for patient_id in patient_ids:
        if patient_id not in found:
            raise UserError(f"patient {patient_id}: no diagnosed study to export", field="patients")


def plan_export(patient_ids: Sequence[int] | None = None, url: str | None = None) -> list[StudyRecord]:
    """The studies to export: every diagnosed study, or those of `patient_ids` (each must have one)."""
    with transaction(url) as session:
        if patient_ids is not None:
            _check_known(session, patient_ids)
        rows = _latest_findings(session, patient_ids)
        if patient_ids is not None:
            _check_diagnosed(patient_ids, {patient.id for _, _, patient in rows})
        if not rows:
            raise UserError("nothing to export: no study has been diagnosed yet")
        checks = _crosschecks(session, [finding.id for finding, _, _ in rows])
        snomed = {code: snomed for code, snomed in session.execute(select(Symptom.code, Symptom.snomed_code))}
        return [
            StudyRecord(
                patient=_patient(patient),
                study_id=study.id,
                study_date=study.study_date,
                case_ref=study.case_ref,
                finding_id=finding.id,
                segmentation_path=finding.segmentation_path,
                report_dir=finding.report_dir,
                locate=finding.locate,
                model_id=finding.model_id,
                provenance=finding.provenance,
                verdict=checks[finding.id].verdict if finding.id in checks else None,
                symptoms=_symptoms(checks.get(finding.id), snomed),
            )
            for finding, study, patient in rows
        ]
