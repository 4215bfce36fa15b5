"""The DICOM node's page and its JSON twin: received studies, their states, and the results outbox (read-only).

Admins only: received studies carry the DICOM identity of patients who may have no care team yet."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from neurotriage.web.deps import AdminUser, SessionDep, audit
from neurotriage.web.dicom_node import node_view
from neurotriage.web.render import page
from neurotriage.web.schemas import DicomNodeOut

router = APIRouter()


@router.get("/dicom", include_in_schema=False)
def dicom_page(request: Request, db: SessionDep, user: AdminUser):
    """Received studies (with their patients' DICOM identifiers, so the view is audited) and destinations."""
    with db() as session:
        view = node_view(session)
        audit(session, user, "view", "dicom")
    return page(request, "dicom.html.j2", user, **view)


@router.get("/api/dicom", response_model=DicomNodeOut, tags=["api"])
def dicom_status(db: SessionDep, user: AdminUser) -> Any:
    """The DICOM node: listener settings, received studies with a count per state, destinations and their queue."""
    with db() as session:
        audit(session, user, "view", "dicom", {"via": "api"})
        return node_view(session)
