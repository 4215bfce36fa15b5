"""Patients, their symptoms and studies: create, find, list and describe.

Every function works inside the caller's session (one transaction per command) and raises
UserError for bad input, naming the field; nothing is written before the input is valid.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from neurotriage.clinical import mrn as mrns
from neurotriage.clinical import validate
from neurotriage.clinical.models import (
    DOMINANCE,
    SEVERITIES,
    SEXES,
    SYMPTOM_SIDES,
    CrossCheckRecord,
    Finding,
    Hospital,
    Patient,
    PatientSymptom,
    Study,
    Symptom,
    SymptomRegionRule,
    utcnow,
)
from neurotriage.clinical.places import Place, fold, geocode
from neurotriage.errors import NotFound, UserError

T = TypeVar("T")
MAX_ROW_ID = 2**31 - 1  # the largest id an INTEGER primary key holds on PostgreSQL


# How each field is called in messages; the keys are the argument names, which front ends map
# to their own controls (CLI flags, form fields).
LABELS = {
    "name": "name",
    "sex": "sex",
    "birth_date": "birth date",
    "city": "city",
    "lat": "latitude",
    "lon": "longitude",
    "dominance": "language dominance",
    "side": "side",
    "onset": "onset date",
    "severity": "severity",
    "case_ref": "case",
    "mrn": "MRN",
    "mrn_issuer": "MRN issuer",
}


def checked(field: str, parse: Callable[..., T], *args: Any) -> T:
    """Run a field parser, turning its ValueError into a UserError naming the field."""
    try:
        return parse(*args)
    except ValueError as exc:
        raise UserError(f"{LABELS.get(field, field)} {exc}", field=field) from None


def _home(city: str | None, lat: str | None, lon: str | None) -> dict[str, Any]:
    """City and coordinates; latitude and longitude are optional but come in pairs."""
    where = {
        "city": checked("city", validate.text, city, 120, False),
        "lat": checked("lat", validate.number, lat, -90, 90, False),
        "lon": checked("lon", validate.number, lon, -180, 180, False),
    }
    if (where["lat"] is None) != (where["lon"] is None):
        missing = "lat" if where["lat"] is None else "lon"
        raise UserError("latitude and longitude must be given together", field=missing)
    return where


def demographics(
    name: str | None,
    sex: str | None = None,
    birth_date: str | None = None,
    city: str | None = None,
    lat: str | None = None,
    lon: str | None = None,
    dominance: str | None = None,
    mrn: str | None = None,
    mrn_issuer: str | None = None,
) -> dict[str, Any]:
    """Validate a patient's own fields, as typed, into the values of the Patient columns."""
    values = {
        "name": checked("name", validate.text, name, 200),
        "sex": checked("sex", validate.choice, sex or "unknown", SEXES),
        "birth_date": checked("birth_date", validate.iso_date, birth_date),
        **_home(city, lat, lon),
        "language_dominance": checked("dominance", validate.choice, dominance or "left", DOMINANCE),
    }
    values["mrn"], values["mrn_issuer"] = mrns.parse_mrn(mrn, mrn_issuer)
    return values


def _hospital_countries(session: Session) -> list[str]:
    """The countries of the hospitals, which tell towns of one name apart."""
    return [c for c in session.scalars(select(Hospital.country).distinct()) if c]


def _place_home(session: Session, values: dict[str, Any]) -> None:
    """Give a city typed without coordinates the coordinates of the town it names (GeoNames, offline)."""
    if values["city"] and values["lat"] is None:
        place = geocode(values["city"], _hospital_countries(session))
        values["lat"], values["lon"] = place.lat, place.lon


def home_place(session: Session, patient: Patient) -> Place | None:
    """The GeoNames town the patient's coordinates came from: the city's match when they are its coordinates
    (None for coordinates typed in, or a city that names no one town)."""
    if not patient.city or patient.lat is None or patient.lon is None:
        return None
    try:
        place = geocode(patient.city, _hospital_countries(session))
    except UserError:
        return None
    same = math.isclose(place.lat, patient.lat, abs_tol=1e-6) and math.isclose(place.lon, patient.lon, abs_tol=1e-6)
    return place if same else None


def add_patient(
    session: Session,
    name: str,
    sex: str | None = None,
    birth_date: str | None = None,
    city: str | None = None,
    lat: str | None = None,
    lon: str | None = None,
    dominance: str | None = None,
    mrn: str | None = None,
    mrn_issuer: str | None = None,
) -> Patient:
    """Validate and add one (confirmed) patient; text arguments as typed on the command line or in a form."""
    values = demographics(name, sex, birth_date, city, lat, lon, dominance, mrn, mrn_issuer)
    mrns.check_free(session, values["mrn"], values["mrn_issuer"])
    _place_home(session, values)
    patient = Patient(**values)
    session.add(patient)
    session.flush()
    return patient


def _as_typed(patient: Patient) -> dict[str, str | None]:
    """The patient's own fields as text, keyed like demographics()' arguments."""
    summary = patient_summary(patient)
    summary["dominance"] = summary.pop("language_dominance")
    return {key: None if summary[key] is None else str(summary[key]) for key in LABELS if key in summary}


def update_patient(session: Session, patient_id: int, **given: str | None) -> tuple[Patient, dict[str, str | None]]:
    """Change the fields given (None clears one; a field not given keeps its value), all validated first.

    A new city without new coordinates drops the old coordinates and is looked up afresh.
    Returns the patient and the changed values as text."""
    patient = get_patient(session, patient_id)
    current = _as_typed(patient)
    unknown = sorted(set(given) - set(current))
    if unknown:
        raise UserError(f"{unknown[0]}: not a patient field", field=unknown[0])
    if given.get("city", current["city"]) != current["city"] and not {"lat", "lon"} & set(given):
        given |= {"lat": None, "lon": None}
    new = demographics(**(current | given))
    mrns.check_free(session, new["mrn"], new["mrn_issuer"], patient.id)
    _place_home(session, new)
    changed = {k: None if v is None else str(v) for k, v in new.items() if getattr(patient, k) != v}
    for key, value in new.items():
        setattr(patient, key, value)
    if "language_dominance" in changed:  # a cross-check made before now is stale
        patient.clinical_changed_at = utcnow()
    session.flush()
    return patient, changed


def confirm_patient(session: Session, patient_id: int) -> tuple[Patient, bool]:
    """Mark the patient's identity as checked by a clinician; True when it was unconfirmed."""
    patient = get_patient(session, patient_id)
    changed = not patient.confirmed
    patient.confirmed = True
    session.flush()
    return patient, changed


def get_patient(session: Session, patient_id: int) -> Patient:
    """The patient with this id, or a UserError."""
    # An id beyond PostgreSQL's INTEGER (or SQLite's 64 bits) names no row; the driver would raise instead.
    patient = session.get(Patient, patient_id) if 0 < patient_id <= MAX_ROW_ID else None
    if patient is None:
        raise NotFound(f"patient {patient_id}: no such patient", field="patient_id")
    return patient


def _like_pattern(search: str) -> str:
    """A LIKE pattern matching `search` literally ('%' and '_' escaped)."""
    escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _as_id(search: str) -> int | None:
    """The patient id a search names: '12' or '#12'."""
    digits = search.removeprefix("#").strip()
    return int(digits) if digits.isascii() and digits.isdigit() and 0 < int(digits) <= MAX_ROW_ID else None


def _as_date(search: str) -> date | None:
    """The date a search names as YYYY-MM-DD."""
    try:
        return date.fromisoformat(search) if len(search) == 10 else None
    except ValueError:
        return None


def search_condition(search: str) -> ColumnElement[bool]:
    """Patients matching a search: their id ('12' or '#12'), birth date (YYYY-MM-DD), a part of the name
    ignoring case and accents ('ZOË' finds 'Zoë'), or a part of the city or MRN ignoring case."""
    text = search.strip()
    pattern = _like_pattern(text)
    matches = [
        Patient.name_folded.like(_like_pattern(fold(text)), escape="\\"),
        *(column.ilike(pattern, escape="\\") for column in (Patient.city, Patient.mrn)),
    ]
    if (patient_id := _as_id(text)) is not None:
        matches.append(Patient.id == patient_id)
    if (born := _as_date(text)) is not None:
        matches.append(Patient.birth_date == born)
    return or_(*matches)


def list_patients(session: Session, search: str | None = None) -> list[Patient]:
    """Patients by id, optionally those matching `search` (see search_condition)."""
    query = select(Patient).order_by(Patient.id)
    if search and search.strip():
        query = query.where(search_condition(search))
    return list(session.scalars(query))


def find_symptom(session: Session, code: str) -> Symptom:
    """A knowledge-base symptom by project slug or SNOMED CT code, or a UserError."""
    wanted = code.strip()
    symptom = session.scalar(select(Symptom).where(or_(Symptom.code == wanted.lower(), Symptom.snomed_code == wanted)))
    if symptom is None:
        raise UserError(f"symptom code {code!r}: unknown", field="code")
    return symptom


def is_lateralised(session: Session, symptom: Symptom) -> bool:
    """Whether the symptom's side matters (it has a contra- or ipsilateral rule)."""
    count = session.scalar(
        select(func.count())
        .select_from(SymptomRegionRule)
        .where(
            SymptomRegionRule.symptom_id == symptom.id,
            SymptomRegionRule.laterality.in_(("contralateral", "ipsilateral")),
        )
    )
    return bool(count)


def add_symptom(
    session: Session,
    patient_id: int,
    code: str,
    side: str | None = None,
    onset: str | None = None,
    severity: str | None = None,
) -> tuple[PatientSymptom, Symptom]:
    """Record a symptom for a patient (a side only where it localises); returns it and its symptom."""
    patient = get_patient(session, patient_id)
    symptom = find_symptom(session, code)
    side_value = checked("side", validate.choice, side, SYMPTOM_SIDES, False)
    if side_value and not is_lateralised(session, symptom):
        raise UserError(f"side: {symptom.code} takes no side (its side does not localise)", field="side")
    entry = PatientSymptom(
        patient_id=patient.id,
        symptom_id=symptom.id,
        side=side_value,
        onset_date=checked("onset", validate.iso_date, onset),
        severity=checked("severity", validate.choice, severity, SEVERITIES, False),
    )
    session.add(entry)
    patient.clinical_changed_at = utcnow()  # a cross-check made before now is stale
    session.flush()
    return entry, symptom


def remove_symptom(session: Session, patient_id: int, entry_id: int) -> Symptom:
    """Remove one of the patient's recorded symptoms (`entry_id`, as `symptom_entries` numbers them);
    returns the symptom it recorded."""
    patient = get_patient(session, patient_id)
    entry = session.get(PatientSymptom, entry_id)
    if entry is None or entry.patient_id != patient.id:
        raise UserError(f"symptom {entry_id}: patient {patient_id} has no such recorded symptom", field="symptom")
    symptom = session.get(Symptom, entry.symptom_id)
    session.delete(entry)
    patient.clinical_changed_at = utcnow()  # a cross-check made before now is stale
    session.flush()
    return symptom


def study_for(
    session: Session,
    patient_id: int,
    case_ref: str,
    study_date: date | None = None,
    synthetic_seed: int | None = None,
) -> Study:
    """The patient's study of this case, created when it does not exist yet."""
    get_patient(session, patient_id)
    case = checked("case_ref", validate.text, case_ref, 500)
    study = session.scalar(select(Study).where(Study.patient_id == patient_id, Study.case_ref == case))
    if study is None:
        study = Study(patient_id=patient_id, case_ref=case, study_date=study_date, synthetic_seed=synthetic_seed)
        session.add(study)
        session.flush()
    return study


def latest_finding(session: Session, patient_id: int) -> Finding | None:
    """The patient's most recent imaging finding over all studies."""
    return session.scalar(
        select(Finding)
        .join(Study, Study.id == Finding.study_id)
        .where(Study.patient_id == patient_id)
        .order_by(Finding.created_at.desc(), Finding.id.desc())
        .limit(1)
    )


def patient_summary(patient: Patient) -> dict[str, Any]:
    """The patient's own fields as a JSON-ready dict."""
    return {
        "id": patient.id,
        "name": patient.name,
        "sex": patient.sex,
        "birth_date": patient.birth_date.isoformat() if patient.birth_date else None,
        "city": patient.city,
        "lat": patient.lat,
        "lon": patient.lon,
        "language_dominance": patient.language_dominance,
        "mrn": patient.mrn,
        "mrn_issuer": patient.mrn_issuer,
        "confirmed": patient.confirmed,
    }


def symptom_entries(session: Session, patient_id: int) -> list[dict[str, Any]]:
    """The patient's symptoms in the order they were recorded, with the knowledge base's names and codes."""
    rows = session.execute(
        select(PatientSymptom, Symptom)
        .join(Symptom, Symptom.id == PatientSymptom.symptom_id)
        .where(PatientSymptom.patient_id == patient_id)
        .order_by(PatientSymptom.id)
    )
    return [
        {
            "id": ps.id,
            "code": s.code,
            "name": s.name,
            "snomed_code": s.snomed_code,
            "side": ps.side,
            "onset": ps.onset_date.isoformat() if ps.onset_date else None,
            "severity": ps.severity,
        }
        for ps, s in rows
    ]


def patient_detail(session: Session, patient: Patient) -> dict[str, Any]:
    """The patient with symptoms, studies and the latest cross-check verdict."""
    symptoms = symptom_entries(session, patient.id)
    studies = session.scalars(select(Study).where(Study.patient_id == patient.id).order_by(Study.id))
    latest = session.scalar(
        select(CrossCheckRecord)
        .where(CrossCheckRecord.patient_id == patient.id)
        .order_by(CrossCheckRecord.id.desc())
        .limit(1)
    )
    return patient_summary(patient) | {
        "symptoms": symptoms,
        "studies": [
            {
                "id": st.id,
                "case": st.case_ref,
                "synthetic_seed": st.synthetic_seed,
                "date": st.study_date.isoformat() if st.study_date else None,
            }
            for st in studies
        ],
        "latest_crosscheck": None
        if latest is None
        else {"id": latest.id, "verdict": latest.verdict, "needs_review": latest.needs_review},
    }
