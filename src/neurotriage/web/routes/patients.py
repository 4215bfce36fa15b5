"""Patient pages: list with search, detail, add, edit and confirm a patient, add symptom, care team, break-glass."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.models import DOMINANCE, SEVERITIES, SEXES, SYMPTOM_SIDES, Symptom
from neurotriage.clinical.mrn import UNCONFIRMED_NOTE
from neurotriage.errors import UserError
from neurotriage.web import access
from neurotriage.web.access import WriterUser
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import AdminUser, CurrentUser, SessionDep, audit, settings
from neurotriage.web.followup import plot_svg
from neurotriage.web.models import User
from neurotriage.web.patient_list import ListParams, list_page, list_params
from neurotriage.web.render import page
from neurotriage.web.views import patient_view

router = APIRouter(include_in_schema=False)
MAX_FIELD = 300
Text = Annotated[str, Form(max_length=MAX_FIELD)]


EDITABLE = ("sex", "birth_date", "city", "lat", "lon", "dominance", "mrn", "mrn_issuer")
FIELDS = ("name", *EDITABLE)


def _blank(value: str) -> str | None:
    """An empty form field as None."""
    return value.strip() or None


@router.get("/patients")
def patients(request: Request, db: SessionDep, user: CurrentUser, params: ListParams):
    """One page of the patient list, optionally searched, sorted by a column."""
    with db() as session:
        context = _list_context(session, user, params)
        audit(session, user, "view", "patients", {"search": params["q"]} if params["q"] else None)
    return page(request, "patients.html.j2", user, **context)


def _list_context(session: Session, user: User, params: dict[str, Any]) -> dict[str, Any]:
    """What the patient list page shows: a page of the patients the user may see."""
    listing = list_page(session, user, **params)
    return {
        "listing": listing,
        "q": listing.q,
        "sexes": SEXES,
        "dominance": DOMINANCE,
        "unconfirmed_note": UNCONFIRMED_NOTE,
    }


async def demographics_form(request: Request) -> dict[str, str | None]:
    """The patient form shared by add and edit: the FIELDS it sent, a blank one as None (which clears it).

    Read from the raw form: FastAPI's form parameters cannot tell a field sent blank from one not sent."""
    sent = await request.form()
    values = {key: value for key in FIELDS if isinstance(value := sent.get(key), str)}
    for key, value in values.items():
        if len(value) > MAX_FIELD:
            raise UserError(f"{intake.LABELS[key]}: at most {MAX_FIELD} characters", field=key)
    return {key: _blank(value) for key, value in values.items()}


Demographics = Annotated[dict[str, str | None], Depends(demographics_form)]


@router.post("/patients")
def add_patient(request: Request, db: SessionDep, user: WriterUser, fields: Demographics, csrf_token: Text = ""):
    """Validate and add a patient (a clinician joins its care team), then show it."""
    check_csrf(request, csrf_token)
    try:
        with db() as session:
            patient = intake.add_patient(session, *(fields.get(k) for k in FIELDS))
            access.join_new_patient(session, user, patient.id)
            audit(session, user, "create", f"patient:{patient.id}", intake.patient_summary(patient))
    except UserError as exc:
        if exc.field not in FIELDS:
            raise
        with db() as session:
            context = _list_context(session, user, list_params())
        return page(request, "patients.html.j2", user, 400, **context, form=fields, error=exc)
    return RedirectResponse(f"/patients/{patient.id}", status_code=303)


@router.get("/patients/{patient_id}")
def patient(request: Request, db: SessionDep, user: CurrentUser, patient_id: int):
    """One patient with symptoms, studies, findings, referrals and jobs."""
    with db() as session:
        access.require_patient(session, user, patient_id)
        context = _detail_context(request, session, patient_id)
        audit(session, user, "view", f"patient:{patient_id}")
    return page(request, "patient.html.j2", user, **context)


def _form_values(p: dict[str, Any]) -> dict[str, Any]:
    """The edit form filled in with the patient's current values."""
    return {key: p["language_dominance" if key == "dominance" else key] for key in FIELDS}


def _detail_context(request: Request, session: Session, patient_id: int) -> dict[str, Any]:
    """What the patient page shows, with the choices of its forms."""
    p = patient_view(session, patient_id)
    return {
        "p": p,
        "home": intake.home_place(session, intake.get_patient(session, patient_id)),
        "follow_up_plot": Markup(plot_svg(p["follow_up"])) if p["follow_up"] else None,
        "form": _form_values(p),
        "symptom_choices": list(session.scalars(select(Symptom).order_by(Symptom.name))),
        "sides": SYMPTOM_SIDES,
        "severities": SEVERITIES,
        "max_upload_mb": settings(request).max_upload_bytes // (1 << 20),
        "sexes": SEXES,
        "dominance": DOMINANCE,
        "unconfirmed_note": UNCONFIRMED_NOTE,
        "care_team": access.care_team(session, patient_id),
    }


@router.post("/patients/{patient_id}/edit")
def edit_patient(
    request: Request, db: SessionDep, user: WriterUser, patient_id: int, fields: Demographics, csrf_token: Text = ""
):
    """Apply the changes to a patient's demographics that the form sent (a field it left out keeps its value)."""
    check_csrf(request, csrf_token)
    try:
        with db() as session:
            access.require_patient(session, user, patient_id)
            _, changed = intake.update_patient(session, patient_id, **fields)
            audit(session, user, "update", f"patient:{patient_id}", changed)
    except UserError as exc:
        if exc.field not in FIELDS:
            raise
        with db() as session:
            context = _detail_context(request, session, patient_id)
        context["form"] |= fields  # what was typed, over the stored values, for correcting
        return page(request, "patient.html.j2", user, 400, **context, error=exc)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/patients/{patient_id}/confirm")
def confirm_patient(request: Request, db: SessionDep, user: WriterUser, patient_id: int, csrf_token: Text = ""):
    """Record that a clinician checked the identity of a patient created from a received study."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        patient, changed = intake.confirm_patient(session, patient_id)
        audit(session, user, "confirm", f"patient:{patient_id}", {"mrn": patient.mrn, "already_confirmed": not changed})
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/patients/{patient_id}/symptoms")
def add_symptom(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    patient_id: int,
    code: Text,
    csrf_token: Text = "",
    side: Text = "",
    onset: Text = "",
    severity: Text = "",
):
    """Validate and record a symptom for the patient."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        entry, symptom = intake.add_symptom(session, patient_id, code, _blank(side), _blank(onset), _blank(severity))
        detail = {"symptom": symptom.code, "side": entry.side, "severity": entry.severity}
        audit(session, user, "create", f"patient:{patient_id}/symptom:{entry.id}", detail)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/patients/{patient_id}/symptoms/{entry_id}/delete")
def remove_symptom(
    request: Request, db: SessionDep, user: WriterUser, patient_id: int, entry_id: int, csrf_token: Text = ""
):
    """Remove a symptom recorded by mistake; the patient's cross-checks go stale."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.require_patient(session, user, patient_id)
        symptom = intake.remove_symptom(session, patient_id, entry_id)
        audit(session, user, "delete", f"patient:{patient_id}/symptom:{entry_id}", {"symptom": symptom.code})
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


def _after_grant(back: str, patient_id: int) -> str:
    """Where to go after a break-glass grant: the refused page when `back` is a plain path of this site."""
    return back if re.fullmatch(r"/[\w./-]*", back) and not back.startswith("//") else f"/patients/{patient_id}"


@router.post("/patients/{patient_id}/break-glass")
def break_glass(
    request: Request,
    db: SessionDep,
    user: CurrentUser,
    patient_id: int,
    reason: Text,
    csrf_token: Text = "",
    back: Text = "",
):
    """Open a patient's record outside the user's care team for a while, for the reason given (audited)."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.break_glass(session, user, patient_id, reason)
    return RedirectResponse(_after_grant(back, patient_id), status_code=303)


@router.post("/patients/{patient_id}/care-team")
def add_team_member(
    request: Request, db: SessionDep, user: AdminUser, patient_id: int, username: Text, csrf_token: Text = ""
):
    """Put a clinician or read-only user on the patient's care team (admins only)."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.add_to_team(session, patient_id, username, user)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)


@router.post("/patients/{patient_id}/care-team/remove")
def remove_team_member(
    request: Request, db: SessionDep, user: AdminUser, patient_id: int, username: Text, csrf_token: Text = ""
):
    """Take a user off the patient's care team (admins only)."""
    check_csrf(request, csrf_token)
    with db() as session:
        access.remove_from_team(session, patient_id, username, user)
    return RedirectResponse(f"/patients/{patient_id}", status_code=303)
