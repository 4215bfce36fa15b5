"""Clinicians' sign-offs of findings, which take effect: location and verdict confirmed or overridden.

A location override (a side and atlas regions) computes the cross-check and the referral again for the
corrected location at once; a re-run computes them again with the patient's symptoms and language
dominance as they are now. Either way the finding's report.json is rewritten with the current state and
the review history (`review_state`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.anatomy.override import check_override, describe_override, parse_override_text
from neurotriage.clinical.crosscheck import VERDICTS
from neurotriage.clinical.decisions import decide_again
from neurotriage.clinical.models import DECISIONS, CrossCheckRecord, Finding, Review
from neurotriage.clinical.reviewed import current_location
from neurotriage.errors import UserError
from neurotriage.files import write_json_atomic
from neurotriage.maintenance.sweep import REPORT_JSON, read_report
from neurotriage.web.models import User
from neurotriage.web.review_exports import write_reviewed_fhir
from neurotriage.web.review_state import (
    FindingState,
    automatic_json,
    crosscheck_json,
    current_json,
    finding_state,
    review_history,
)
from neurotriage.web.views import get_finding

REVIEW_BLOCK = "clinician_review"  # the key of the current state and review history in report.json


def _location_entry(location: str, text: str, hemisphere: str, regions: Sequence[str]) -> dict[str, Any]:
    """The location columns of a review: a structured override (or one parsed from text), or none."""
    if location != "override":
        return {"location_override": None, "location_hemisphere": None, "location_regions": None}
    if hemisphere.strip() or any(r.strip() for r in regions):
        side, chosen = check_override(hemisphere.strip(), list(regions))
    elif text.strip():
        side, chosen = parse_override_text(text)
    else:
        message = "location_override: give the corrected location (a side and one or more regions) when overriding it"
        raise UserError(message, field="location_override")
    return {
        "location_override": describe_override(side, chosen),
        "location_hemisphere": side,
        "location_regions": chosen,
    }


def check_review(
    location: str,
    location_to: str,
    verdict: str,
    verdict_to: str,
    comment: str,
    hemisphere: str = "",
    regions: Sequence[str] = (),
) -> dict[str, Any]:
    """A review's fields, checked: an override needs its new value, and a comment is required. A location
    override is a `hemisphere` and `regions` of the atlas, or, without them, `location_to` as text."""
    for field, value in (("location_decision", location), ("verdict_decision", verdict)):
        if value not in DECISIONS:
            raise UserError(f"{field}: must be confirm or override, not {value!r}", field=field)
    entry = _location_entry(location, location_to, hemisphere, regions)
    if verdict == "override" and verdict_to not in VERDICTS:
        message = f"verdict_override: must be one of {', '.join(VERDICTS)} when overriding the verdict"
        raise UserError(message, field="verdict_override")
    if not comment.strip():
        raise UserError("comment: a sign-off needs a comment", field="comment")
    return {
        "location_decision": location,
        **entry,
        "verdict_decision": verdict,
        "verdict_override": verdict_to if verdict == "override" else None,
        "comment": comment.strip(),
    }


def _locked_finding(session: Session, finding_id: int) -> Finding:
    """The finding, its row locked for this transaction, so that reviews of it are made one at a time."""
    get_finding(session, finding_id)
    return session.scalar(select(Finding).where(Finding.id == finding_id).with_for_update())


def _confirmed(entry: dict[str, Any], state: FindingState) -> dict[str, Any]:
    """The entry with what a confirmation confirms: a clinician's location or verdict that is current is
    carried into the new review, so the newest review alone says what is current."""
    review = state.review
    if entry["location_decision"] == "confirm" and state.location_by_clinician:
        entry = entry | {
            key: getattr(review, key) for key in ("location_override", "location_hemisphere", "location_regions")
        }
    if entry["verdict_decision"] == "confirm" and state.verdict_by_clinician:
        entry = entry | {"verdict_override": state.verdict}
    return entry


def add_review(session: Session, finding_id: int, user: User | None, entry: dict[str, Any]) -> Review:
    """Store a checked review (from `check_review`) of an existing finding; a location override computes the
    cross-check and the referral again for the corrected location. report.json follows."""
    finding = _locked_finding(session, finding_id)
    state = finding_state(session, finding)
    review = Review(finding_id=finding_id, user_id=user.id if user else None, **_confirmed(entry, state))
    session.add(review)
    session.flush()
    if entry["location_decision"] == "override":
        location = current_location(state.automatic, review)
        decide_again(session, finding, location, "review", _name(user), review_id=review.id)
    publish_review(session, finding)
    return review


def rerun_crosscheck(session: Session, finding_id: int, user: User | None) -> CrossCheckRecord | None:
    """Compute the cross-check and the referral again with the patient's current symptoms and dominance,
    for the current location (a clinician's override where there is one); report.json follows."""
    finding = _locked_finding(session, finding_id)
    state = finding_state(session, finding)
    used = {"review_id": state.review.id} if state.location_by_clinician else {}
    check, _ = decide_again(session, finding, state.location, "rerun", _name(user), **used)
    publish_review(session, finding)
    return check


def _name(user: User | None) -> str | None:
    return user.username if user else None


def review_block(session: Session, state: FindingState) -> dict[str, Any]:
    """The current state, the current referral and the review history, as report.json holds them."""
    referral = state.referral
    return {
        "current": current_json(state),
        "automatic": automatic_json(state),
        "crosscheck": crosscheck_json(state.crosscheck),
        "referral": None
        if referral is None
        else {
            "id": referral.id,
            "origin": referral.origin,
            "requested_by": referral.requested_by,
            "note": referral.result.get("note"),
            "recommendations": referral.result.get("recommendations") or [],
        },
        "reviews": review_history(session, state.finding.id),
    }


def publish_review(session: Session, finding: Finding) -> Path | None:
    """Rewrite the finding's report.json (atomically) with its `review_block`, and write the reviewed FHIR bundle
    beside the diagnosis's (`review_exports`); returns report.json, or None when the finding has no report of its
    own (none written, or its folder holds a later finding's report)."""
    if not finding.report_dir:
        return None
    folder = Path(finding.report_dir)
    doc = read_report(folder)
    if doc is None or doc.get("finding_key") != finding.key:
        return None
    state = finding_state(session, finding)
    reviewed = write_reviewed_fhir(folder, doc, state)
    if reviewed:
        doc = doc | {"files": sorted({*doc["files"], reviewed})}
    return write_json_atomic(folder / REPORT_JSON, doc | {REVIEW_BLOCK: review_block(session, state)}, indent=2)
