"""Editing a patient from the web form, validated exactly as `intake.add_patient` validates.

The clinical intake module has no update function yet; this applies the same field checks to an
existing row (a candidate to move into `intake` as `update_patient`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from neurotriage.clinical import intake, validate
from neurotriage.clinical.models import DOMINANCE, SEXES, Patient


def update_patient(session: Session, patient_id: int, fields: dict[str, str | None]) -> tuple[Patient, dict[str, Any]]:
    """Validate every field first, then change the patient; returns it and the changed values."""
    patient = intake.get_patient(session, patient_id)
    where = intake.checked("--lat/--lon", validate.location, fields["city"], fields["lat"], fields["lon"])
    new = {
        "name": intake.checked("--name", validate.text, fields["name"], 200),
        "sex": intake.checked("--sex", validate.choice, fields["sex"] or "unknown", SEXES),
        "birth_date": intake.checked("--birth-date", validate.iso_date, fields["birth_date"]),
        "city": where[0],
        "lat": where[1],
        "lon": where[2],
        "language_dominance": intake.checked("--dominance", validate.choice, fields["dominance"] or "left", DOMINANCE),
    }
    changed = {k: str(v) if v is not None else None for k, v in new.items() if getattr(patient, k) != v}
    for key, value in new.items():
        setattr(patient, key, value)
    session.flush()
    return patient, changed
