"""The JSON API (same session cookie as the pages; writes need the X-CSRF-Token header)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from neurotriage.clinical import intake
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import audit, db, require_user
from neurotriage.web.models import AuditEvent, User
from neurotriage.web.records import finding_view, patient_view
from neurotriage.web.routes.jobs import get_job

router = APIRouter(prefix="/api", tags=["api"])
CurrentUser = Annotated[User, Depends(require_user)]


class PatientIn(BaseModel):
    """A new patient; values are validated as the CLI validates them."""

    name: str = Field(max_length=200)
    sex: str | None = None
    birth_date: str | None = Field(default=None, description="YYYY-MM-DD")
    city: str | None = None
    lat: str | None = None
    lon: str | None = None
    dominance: str | None = Field(default=None, description="left or right")


class SymptomIn(BaseModel):
    """A symptom to record for a patient (knowledge-base code or SNOMED CT code)."""

    code: str
    side: str | None = None
    onset: str | None = None
    severity: str | None = None


@router.get("/patients")
def list_patients(request: Request, user: CurrentUser, q: str = "") -> list[dict[str, Any]]:
    """Patients, optionally those whose name or city contains `q`."""
    with db(request) as session:
        audit(session, user, "view", "patients", {"search": q, "via": "api"})
        return [intake.patient_summary(p) for p in intake.list_patients(session, q.strip() or None)]


@router.post("/patients", status_code=201)
def create_patient(
    request: Request, user: CurrentUser, body: PatientIn, x_csrf_token: Annotated[str, Header()] = ""
) -> dict[str, Any]:
    """Add a patient."""
    check_csrf(request, x_csrf_token)
    with db(request) as session:
        values = body.model_dump()
        patient = intake.add_patient(session, values.pop("name"), **values)
        audit(session, user, "create", f"patient:{patient.id}", {"via": "api"})
        return intake.patient_summary(patient)


@router.get("/patients/{patient_id}")
def get_patient(request: Request, user: CurrentUser, patient_id: int) -> dict[str, Any]:
    """A patient with symptoms, studies, findings, referrals and jobs."""
    with db(request) as session:
        audit(session, user, "view", f"patient:{patient_id}", {"via": "api"})
        return patient_view(session, patient_id)


@router.post("/patients/{patient_id}/symptoms", status_code=201)
def create_symptom(
    request: Request,
    user: CurrentUser,
    patient_id: int,
    body: SymptomIn,
    x_csrf_token: Annotated[str, Header()] = "",
) -> dict[str, Any]:
    """Record a symptom for a patient."""
    check_csrf(request, x_csrf_token)
    with db(request) as session:
        entry, symptom = intake.add_symptom(session, patient_id, **body.model_dump())
        audit(session, user, "create", f"patient:{patient_id}/symptom:{entry.id}", {"via": "api"})
        return {"id": entry.id, "code": symptom.code, "side": entry.side, "severity": entry.severity}


@router.get("/jobs/{job_id}")
def job_status(request: Request, user: CurrentUser, job_id: int) -> dict[str, Any]:
    """A diagnosis job's status and per-stage progress."""
    with db(request) as session:
        return request.app.state.jobs.live(get_job(session, job_id))


@router.get("/findings/{finding_id}")
def get_finding(request: Request, user: CurrentUser, finding_id: int) -> dict[str, Any]:
    """A finding: location summary, verdict, referral and its status, reviews."""
    with db(request) as session:
        audit(session, user, "view", f"finding:{finding_id}", {"via": "api"})
        return finding_view(session, finding_id)


@router.get("/audit")
def audit_log(request: Request, user: CurrentUser, limit: int = 100) -> list[dict[str, Any]]:
    """The newest audit events (admins only)."""
    if user.role != "admin":
        raise HTTPException(status_code=403, detail="audit log: admins only")
    with db(request) as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(min(max(limit, 1), 1000)))
        return [
            {"at": e.at.isoformat(timespec="seconds"), "user": e.username, "action": e.action,
             "target": e.target, "detail": e.detail}
            for e in rows
        ]  # fmt: skip
