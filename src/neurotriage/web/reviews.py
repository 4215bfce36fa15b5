"""Clinicians' sign-offs of findings: location and verdict confirmed or overridden, with a comment."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from neurotriage.clinical.crosscheck import VERDICTS
from neurotriage.errors import UserError
from neurotriage.web.models import DECISIONS, Review
from neurotriage.web.views import get_finding


def check_review(location: str, location_to: str, verdict: str, verdict_to: str, comment: str) -> dict[str, Any]:
    """A review's fields, checked: an override needs its new value, and a comment is required."""
    for field, value in (("location_decision", location), ("verdict_decision", verdict)):
        if value not in DECISIONS:
            raise UserError(f"{field}: must be confirm or override, not {value!r}", field=field)
    if location == "override" and not location_to.strip():
        raise UserError("location_override: give the corrected location when overriding it", field="location_override")
    if verdict == "override" and verdict_to not in VERDICTS:
        message = f"verdict_override: must be one of {', '.join(VERDICTS)} when overriding the verdict"
        raise UserError(message, field="verdict_override")
    if not comment.strip():
        raise UserError("comment: a sign-off needs a comment", field="comment")
    return {
        "location_decision": location,
        "location_override": location_to.strip() if location == "override" else None,
        "verdict_decision": verdict,
        "verdict_override": verdict_to if verdict == "override" else None,
        "comment": comment.strip(),
    }


def add_review(session: Session, finding_id: int, user_id: int | None, entry: dict[str, Any]) -> Review:
    """Store a checked review (from `check_review`) of an existing finding."""
    get_finding(session, finding_id)
    review = Review(finding_id=finding_id, user_id=user_id, **entry)
    session.add(review)
    session.flush()
    return review
