"""The JSON API (same session cookie as the pages; writes need the X-CSRF-Token header)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request

from neurotriage.clinical import intake
from neurotriage.web import access
from neurotriage.web.access import WriterUser
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import CurrentUser, SessionDep, audit
from neurotriage.web.patient_list import ListParams, list_page
from neurotriage.web.schemas import (
    BreakGlassIn,
    BreakGlassOut,
    JobOut,
    PatientDetailOut,
    PatientIn,
    PatientListOut,
    PatientOut,
    PatientPatch,
    SymptomIn,
    SymptomOut,
)
from neurotriage.web.views import patient_view

router = APIRouter(prefix="/api", tags=["api"])


@router.get("/patients", response_model=PatientListOut)
def list_patients(db: SessionDep, user: CurrentUser, params: ListParams) -> Any:
    """One page of the patients the user may see, optionally those matching `q` (an id as '12' or '#12', a birth
    date as YYYY-MM-DD, part of the name ignoring case and accents, of the city or of the MRN), sorted by
    id, name, born, study (the newest study's date) or status, with each one's status and the total count."""
    with db() as session:
        audit(session, user, "view", "patients", {"search": params["q"], "via": "api"})
        listing = list_page(session, user, **params)
        return asdict(listing) | {"pages": listing.pages}


@router.post("/patients", status_code=201, response_model=PatientOut)
def create_patient(
    request: Request, db: SessionDep, user: WriterUser, body: PatientIn, x_csrf_token: Annotated[str, Header()] = ""
) -> Any:
    """Add a patient (a clinician joins its care team)."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        values = body.model_dump()
        patient = intake.add_patient(session, values.pop("name"), **values)
        access.join_new_patient(session, user, patient.id)
        audit(session, user, "create", f"patient:{patient.id}", {"via": "api"})
        return intake.patient_summary(patient)


@router.patch("/patients/{patient_id}", response_model=PatientOut)
def edit_patient(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    patient_id: int,
    body: PatientPatch,
    x_csrf_token: Annotated[str, Header()] = "",
) -> Any:
    """Change the fields the body gives (null clears one; a field left out keeps its value)."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        patient, changed = intake.update_patient(session, patient_id, **body.model_dump(include=body.model_fields_set))
        audit(session, user, "update", f"patient:{patient_id}", changed | {"via": "api"})
        return intake.patient_summary(patient)


@router.get("/patients/{patient_id}", response_model=PatientDetailOut)
def get_patient(db: SessionDep, user: CurrentUser, patient_id: int) -> Any:
    """A patient with symptoms, studies, findings, referrals and jobs."""
    with db() as session:
        access.require_patient(session, user, patient_id)
        audit(session, user, "view", f"patient:{patient_id}", {"via": "api"})
        return patient_view(session, patient_id)


@router.post("/patients/{patient_id}/confirm", response_model=PatientOut)
def confirm_patient(
    request: Request, db: SessionDep, user: WriterUser, patient_id: int, x_csrf_token: Annotated[str, Header()] = ""
) -> Any:
    """Confirm the identity of a patient created from a received study."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        patient, changed = intake.confirm_patient(session, patient_id)
        audit(session, user, "confirm", f"patient:{patient_id}", {"via": "api", "already_confirmed": not changed})
        return intake.patient_summary(patient)


@router.post("/patients/{patient_id}/symptoms", status_code=201, response_model=SymptomOut)
def create_symptom(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    patient_id: int,
    body: SymptomIn,
    x_csrf_token: Annotated[str, Header()] = "",
) -> Any:
    """Record a symptom for a patient."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        entry, symptom = intake.add_symptom(session, patient_id, **body.model_dump())
        audit(session, user, "create", f"patient:{patient_id}/symptom:{entry.id}", {"via": "api"})
        return {"id": entry.id, "code": symptom.code, "side": entry.side, "severity": entry.severity}


@router.delete("/patients/{patient_id}/symptoms/{entry_id}", status_code=204)
def delete_symptom(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    patient_id: int,
    entry_id: int,
    x_csrf_token: Annotated[str, Header()] = "",
) -> None:
    """Remove a symptom recorded by mistake; the patient's cross-checks go stale."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        symptom = intake.remove_symptom(session, patient_id, entry_id)
        audit(
            session, user, "delete", f"patient:{patient_id}/symptom:{entry_id}", {"symptom": symptom.code, "via": "api"}
        )


@router.get("/jobs/{job_id}", response_model=JobOut)
def job_status(request: Request, db: SessionDep, user: CurrentUser, job_id: int) -> Any:
    """A diagnosis job's status and per-stage progress (polls by one user are audited once per window)."""
    with db() as session:
        job = request.app.state.jobs.live(session, access.require_job(session, user, job_id))
        if request.app.state.repeat_reads.should_audit((user.id, "job", job_id)):
            audit(session, user, "view", f"job:{job_id}", {"via": "api"}, patient_id=job["patient_id"])
        return job


@router.post("/patients/{patient_id}/break-glass", status_code=201, response_model=BreakGlassOut)
def break_glass(
    request: Request,
    db: SessionDep,
    user: CurrentUser,
    patient_id: int,
    body: BreakGlassIn,
    x_csrf_token: Annotated[str, Header()] = "",
) -> Any:
    """Open a patient's record outside the user's care team for a while, for the reason given (audited)."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        grant = access.break_glass(session, user, patient_id, body.reason)
        return {"patient_id": patient_id, "reason": grant.reason, "expires_at": grant.expires_at}
