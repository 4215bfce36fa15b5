"""`PatientSnapshot`: one patient as the decisions and the report need them, read once."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.crosscheck import ReportedSymptom


class SymptomEntry(BaseModel):
    """A symptom the patient reported: the project's code, its name, SNOMED CT code, side, onset, severity."""

    code: str
    name: str = ""
    snomed_code: str | None = None
    side: str | None = None
    onset: str | None = None
    severity: str | None = None


class PatientSnapshot(BaseModel):
    """The patient's own fields and reported symptoms at one moment."""

    id: int
    name: str
    sex: str | None = None
    birth_date: date | None = None
    city: str | None = None
    lat: float | None = None
    lon: float | None = None
    language_dominance: str = "left"
    mrn: str | None = None
    mrn_issuer: str | None = None
    # False while the patient, created from a received study, awaits a clinician's identity check.
    confirmed: bool = True
    symptoms: list[SymptomEntry] = Field(default_factory=list)

    @property
    def home(self) -> tuple[float, float] | None:
        """Home coordinates, when both are recorded."""
        return (self.lat, self.lon) if self.lat is not None and self.lon is not None else None

    def reported(self) -> list[ReportedSymptom]:
        """The symptoms as cross-check input, in the order they were recorded."""
        return [ReportedSymptom(s.code, s.side, s.onset, s.severity) for s in self.symptoms]


def load_patient(session: Session, patient_id: int) -> PatientSnapshot:
    """Read a patient and their symptoms; an unknown id is a user error naming `patient_id`."""
    patient = intake.get_patient(session, patient_id)
    symptoms = intake.symptom_entries(session, patient.id)
    return PatientSnapshot.model_validate(intake.patient_summary(patient) | {"symptoms": symptoms})
