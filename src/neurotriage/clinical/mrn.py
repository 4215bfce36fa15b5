"""Medical record numbers: one patient per MRN and issuer, and the patient a received study names.

An MRN is unique within its issuer (DICOM IssuerOfPatientID); an MRN recorded without an issuer is
unique among those without one. A study from the PACS names its patient by PatientID, with or
without an issuer; when no patient holds that MRN, a patient is created from the study's own tags
and stays unconfirmed until a clinician checks the identity.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical import validate
from neurotriage.clinical.models import Patient
from neurotriage.errors import UserError

MAX_LEN = 64  # DICOM LO, the value representation of PatientID and IssuerOfPatientID
DICOM_SEXES = {"M": "male", "F": "female", "O": "other"}
NAME_LEN = 200
# How an unconfirmed patient is marked wherever it is shown.
UNCONFIRMED_NOTE = "unconfirmed: created from a received study; check the identity before acting on a referral"


def parse_mrn(mrn: str | None, issuer: str | None) -> tuple[str | None, str | None]:
    """The trimmed MRN and issuer (blank is None); an issuer needs an MRN."""
    values = []
    for field, raw in (("mrn", mrn), ("mrn_issuer", issuer)):
        try:
            values.append(validate.text(raw, MAX_LEN, required=False))
        except ValueError as exc:
            raise UserError(f"{'MRN' if field == 'mrn' else 'MRN issuer'} {exc}", field=field) from None
    if values[1] is not None and values[0] is None:
        raise UserError("MRN issuer given without an MRN", field="mrn_issuer")
    return values[0], values[1]


def describe(mrn: str, issuer: str | None) -> str:
    """An MRN as messages show it: 'MRN 123 (issuer HOSP)'."""
    return f"MRN {mrn!r}" + (f" (issuer {issuer!r})" if issuer else " (no issuer)")


def holder(session: Session, mrn: str, issuer: str | None) -> Patient | None:
    """The patient recorded with exactly this MRN and issuer (None: recorded without an issuer)."""
    same_issuer = Patient.mrn_issuer.is_(None) if issuer is None else Patient.mrn_issuer == issuer
    return session.scalar(select(Patient).where(Patient.mrn == mrn, same_issuer))


def check_free(session: Session, mrn: str | None, issuer: str | None, patient_id: int | None = None) -> None:
    """Refuse an MRN and issuer that another patient than `patient_id` already holds."""
    if mrn is None:
        return
    other = holder(session, mrn, issuer)
    if other is not None and other.id != patient_id:
        raise UserError(f"{describe(mrn, issuer)} already belongs to patient {other.id}", field="mrn")


def _match(session: Session, mrn: str, issuer: str | None) -> Patient | None:
    """The patient of an MRN given with an issuer, or of an MRN without one when it is unique across issuers."""
    if issuer is not None:
        return holder(session, mrn, issuer)
    found = list(session.scalars(select(Patient).where(Patient.mrn == mrn).order_by(Patient.id)))
    if len(found) > 1:
        named = ", ".join(f"patient {p.id} (issuer {p.mrn_issuer or 'none'})" for p in found)
        raise UserError(f"MRN {mrn!r} without an issuer matches several patients: {named}", field="mrn_issuer")
    return found[0] if found else None


def patient_name(dicom_name: str | None, mrn: str) -> str:
    """A DICOM PatientName ("FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX") in reading order: "Given Middle Family"."""
    parts = (dicom_name or "").split("=")[0].split("^")  # '=' starts the ideographic form
    family, given, middle, prefix, suffix = (parts + [""] * 5)[:5]
    words = " ".join(" ".join((prefix, given, middle, family, suffix)).split())
    return (words or f"Unknown patient, MRN {mrn}")[:NAME_LEN]


def find_or_create_by_mrn(
    session: Session,
    *,
    mrn: str,
    issuer: str | None,
    name: str | None,
    birth_date: date | None,
    sex: str | None,
) -> tuple[Patient, bool]:
    """The patient a study's PatientID (and IssuerOfPatientID) names, or a new unconfirmed one from the
    study's name, birth date and DICOM sex (M, F, O); True when it was created."""
    mrn_value, issuer_value = parse_mrn(mrn, issuer)
    if mrn_value is None:
        raise UserError("MRN is empty", field="mrn")
    found = _match(session, mrn_value, issuer_value)
    if found is not None:
        return found, False
    patient = Patient(
        name=patient_name(name, mrn_value),
        sex=DICOM_SEXES.get((sex or "").strip().upper(), "unknown"),
        birth_date=birth_date,
        mrn=mrn_value,
        mrn_issuer=issuer_value,
        confirmed=False,
    )
    session.add(patient)
    session.flush()
    return patient, True
