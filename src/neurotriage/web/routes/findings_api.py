"""The findings API: read a finding's automatic and current state, sign it off, re-run its cross-check.

A finding of a patient outside the user's reach answers 404, as a missing one does: the API does
not say which findings exist. Writes need the X-CSRF-Token header and a user who may write.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from neurotriage.clinical.models import Finding, Study
from neurotriage.errors import Forbidden, NotFound, UserError
from neurotriage.web import access
from neurotriage.web.access import WriterUser
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import CurrentUser, SessionDep, audit
from neurotriage.web.models import User
from neurotriage.web.pacs_results import sign_off_of
from neurotriage.web.review_state import current_json, finding_state
from neurotriage.web.reviews import add_review, check_review, rerun_crosscheck
from neurotriage.web.schemas import CurrentOut, FindingOut
from neurotriage.web.views import finding_view

router = APIRouter(prefix="/api", tags=["api"])
Decision = Literal["confirm", "override"]


class LocationIn(BaseModel):
    """A corrected location: a side and one or more atlas regions (lobes or eloquent areas)."""

    hemisphere: str = Field(max_length=16, description="left, right, bilateral or midline")
    regions: list[str] = Field(max_length=32, description="atlas region codes, e.g. temporal_lobe")


class ReviewIn(BaseModel):
    """A sign-off: location and verdict confirmed or overridden, with a comment."""

    location_decision: Decision
    location_override: LocationIn | str | None = Field(
        default=None, description="with an override: a side and regions, or text such as 'left temporal lobe'"
    )
    verdict_decision: Decision
    verdict_override: str | None = Field(default=None, max_length=64)
    comment: str = Field(max_length=4000)


def _reachable(session: Session, user: User, finding_id: int) -> tuple[Finding, Study]:
    """The finding when the user may see it; NotFound otherwise, as for a finding that does not exist."""
    try:
        return access.require_finding(session, user, finding_id)
    except Forbidden:
        raise NotFound(f"finding {finding_id}: no such finding", field="finding_id") from None


def _checked(body: ReviewIn) -> dict[str, Any]:
    """The review's stored fields; a structured override is passed as such, text is parsed."""
    override = body.location_override
    structured = override if isinstance(override, LocationIn) else None
    return check_review(
        body.location_decision,
        override if isinstance(override, str) else "",
        body.verdict_decision,
        body.verdict_override or "",
        body.comment,
        hemisphere=structured.hemisphere if structured else "",
        regions=structured.regions if structured else (),
    )


@router.get("/findings/{finding_id}", response_model=FindingOut)
def get_finding(db: SessionDep, user: CurrentUser, finding_id: int) -> Any:
    """A finding: its automatic and current location and verdict, the referral for the current one,
    whether the cross-check is stale, and the reviews (newest, the current one, first)."""
    with db() as session:
        _, study = _reachable(session, user, finding_id)
        audit(session, user, "view", f"finding:{finding_id}", {"via": "api"}, patient_id=study.patient_id)
        return finding_view(session, finding_id)


@router.post("/findings/{finding_id}/reviews", status_code=201, response_model=CurrentOut)
def post_review(
    request: Request, db: SessionDep, user: WriterUser, finding_id: int, body: ReviewIn,
    x_csrf_token: Annotated[str, Header()] = "",
) -> Any:  # fmt: skip
    """Sign a finding off; a location override computes the cross-check and the referral again at once.
    Answers the new current state; an override that cannot be read is a 422 naming the field."""
    check_csrf(request, x_csrf_token)
    try:
        entry = _checked(body)
    except UserError as exc:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    with db() as session:
        _, study = _reachable(session, user, finding_id)
        review = add_review(session, finding_id, user, entry)
        sign_off = sign_off_of(session, finding_id, review)
        detail = entry | {"review": review.id, "via": "api"}
        audit(session, user, "review", f"finding:{finding_id}", detail, patient_id=study.patient_id)
        current = current_json(finding_state(session, session.get(Finding, finding_id)))
    request.app.state.pacs_results.submit(sign_off)
    return current


@router.post("/findings/{finding_id}/crosscheck", response_model=FindingOut)
def post_crosscheck(
    request: Request, db: SessionDep, user: WriterUser, finding_id: int, x_csrf_token: Annotated[str, Header()] = ""
) -> Any:
    """Compute the cross-check and the referral again with the patient's current symptoms and language
    dominance, for the current location; answers the finding as GET does."""
    check_csrf(request, x_csrf_token)
    with db() as session:
        _, study = _reachable(session, user, finding_id)
        check = rerun_crosscheck(session, finding_id, user)
        detail = {"crosscheck": check.id, "verdict": check.verdict, "via": "api"} if check else {"via": "api"}
        audit(session, user, "rerun", f"finding:{finding_id}", detail, patient_id=study.patient_id)
        return finding_view(session, finding_id)
