"""Erasing a patient (admins only): what goes, the patient's name typed to confirm, then the erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from neurotriage.maintenance.erase import Actor, ErasurePlan, counted, erase, plan_erasure
from neurotriage.maintenance.patient_files import human_bytes
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import AdminUser, SessionDep, audit, settings
from neurotriage.web.models import User
from neurotriage.web.render import page

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=300)]
MISMATCH = "The name you typed is not this patient's name; nothing was erased."


@router.get("/patients/{patient_id}/erase")
def erase_page(request: Request, db: SessionDep, user: AdminUser, patient_id: int):
    """What erasing the patient removes, and the form to confirm it."""
    plan = _plan(request, patient_id)
    with db() as session:
        audit(session, user, "view", f"patient:{patient_id}/erase")
    return _page(request, user, plan)


@router.post("/patients/{patient_id}/erase")
def erase_patient(request: Request, user: AdminUser, patient_id: int, confirm_name: Text = "", csrf_token: Text = ""):
    """Erase the patient once their name is typed exactly, then go back to the patient list and say so."""
    check_csrf(request, csrf_token)
    plan = _plan(request, patient_id)
    if confirm_name.strip() != plan.patient_name.strip():
        return _page(request, user, plan, MISMATCH)
    conf = settings(request)
    done = erase(
        "patient",
        patient_id,
        Actor(user.username, user.id),
        conf.database_url,
        conf.data_dir,
        request.app.state.gate.held,
    )
    request.session["flash"] = (
        f"Erased patient {patient_id}: {counted(done)}; {done.files} files ({human_bytes(done.bytes)})."
    )
    return RedirectResponse("/patients", status_code=303)


def _plan(request: Request, patient_id: int) -> ErasurePlan:
    conf = settings(request)
    return plan_erasure("patient", patient_id, conf.database_url, conf.data_dir, request.app.state.gate.held)


def _page(request: Request, user: User, plan: ErasurePlan, error: str | None = None) -> HTMLResponse:
    status = 400 if error else 200
    return page(request, "erase.html.j2", user, status, plan=plan, size=human_bytes(plan.bytes), error=error)
