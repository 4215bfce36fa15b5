"""A finding's current state under its clinicians' reviews: where the tumour is, the verdict, whether it
awaits sign-off or is stale, and the stored cross-check and referral that go with it.

The newest review is current and the older ones are history. Its location override (a side and atlas
regions) is the current location, and the newest cross-check computed for the current location, with the
referral stored beside it, is current (one computed elsewhere for another location, such as the imaging
location after an override, is not).
Its verdict override is the current verdict until the cross-check is computed again after it (a re-run
with changed symptoms asks for a fresh look). A computed verdict that needs review is signed off by a
review made after it was computed; the computation a location override itself triggered was not seen by
the clinician who asked for it, so it is not. A cross-check made before the patient's symptoms or
language dominance last changed is stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from neurotriage.anatomy.location import Location, parse_location
from neurotriage.clinical.crosscheck import CrossCheck
from neurotriage.clinical.models import CrossCheckRecord, Finding, Patient, ReferralRecord, Review, Study
from neurotriage.clinical.reviewed import current_location
from neurotriage.web.models import User

AUTOMATIC = "automatic"
CLINICIAN = "clinician"
DELETED_USER = "(deleted user)"


@dataclass(frozen=True)
class FindingState:
    """What is current for one finding, and the records it comes from."""

    finding: Finding
    patient: Patient
    automatic: Location
    location: Location
    review: Review | None  # the newest review
    reviewer: str | None  # its author's username
    crosscheck: CrossCheckRecord | None  # the newest cross-check for the current location
    first_verdict: str | None  # the verdict of the cross-check stored with the finding
    referral: ReferralRecord | None  # the referral stored with that cross-check
    verdict: str | None
    verdict_by_clinician: bool
    needs_review: bool
    stale: bool

    @property
    def location_by_clinician(self) -> bool:
        """Whether the current location is a clinician's override."""
        return self.review is not None and self.review.location_hemisphere is not None

    @property
    def source(self) -> str:
        """'clinician' once a review overrides the location or the verdict, else 'automatic'."""
        return CLINICIAN if self.location_by_clinician or self.verdict_by_clinician else AUTOMATIC


def _decisions(session: Session, finding_id: int, location: Location) -> tuple[Any, Any]:
    """The newest cross-check of the finding computed for `location` (the newest of any when none was, as for
    records stored before their location was), and the referral stored with it."""
    checks = session.scalars(
        select(CrossCheckRecord).where(CrossCheckRecord.finding_id == finding_id).order_by(CrossCheckRecord.id.desc())
    ).all()
    wanted = location.model_dump(mode="json")
    check = next((c for c in checks if c.inputs.get("locate") == wanted), checks[0] if checks else None)
    referrals = select(ReferralRecord).where(ReferralRecord.finding_id == finding_id)
    if check is not None:
        referrals = referrals.where(ReferralRecord.crosscheck_id == check.id)
    return check, session.scalar(referrals.order_by(ReferralRecord.id.desc()).limit(1))


def _first_verdict(session: Session, finding_id: int) -> str | None:
    query = select(CrossCheckRecord.verdict).where(CrossCheckRecord.finding_id == finding_id)
    return session.scalar(query.order_by(CrossCheckRecord.id).limit(1))


def _with_authors(finding_id: int) -> Select:
    """The finding's reviews with their authors' usernames, newest first."""
    return (
        select(Review, User.username)
        .outerjoin(User, User.id == Review.user_id)
        .where(Review.finding_id == finding_id)
        .order_by(Review.id.desc())
    )


def _made_for(check: CrossCheckRecord, review: Review) -> bool:
    """Whether the cross-check was computed for the review's location override, as part of that review."""
    return check.origin == "review" and check.inputs.get("review_id") == review.id


def _reviewed_after(check: CrossCheckRecord, review: Review | None) -> bool:
    """Whether the review was made after the cross-check was computed (and not as part of it)."""
    return review is not None and check.created_at <= review.created_at and not _made_for(check, review)


def finding_state(session: Session, finding: Finding) -> FindingState:
    """The finding's current state (see the module's description)."""
    patient = session.get(Patient, session.get(Study, finding.study_id).patient_id)
    newest = session.execute(_with_authors(finding.id).limit(1)).first()
    review, reviewer = (newest[0], newest[1] or DELETED_USER) if newest else (None, None)
    automatic = parse_location(finding.locate, f"finding {finding.id}")
    location = current_location(automatic, review)
    check, referral = _decisions(session, finding.id, location)
    # A verdict override holds for the cross-check it was made on, or the one computed as part of its review.
    by_clinician = (
        review is not None
        and review.verdict_override is not None
        and (check is None or _made_for(check, review) or _reviewed_after(check, review))
    )
    computed = check.verdict if check else None
    changed = patient.clinical_changed_at
    return FindingState(
        finding=finding,
        patient=patient,
        automatic=automatic,
        location=location,
        review=review,
        reviewer=reviewer,
        crosscheck=check,
        first_verdict=_first_verdict(session, finding.id),
        referral=referral,
        verdict=review.verdict_override if by_clinician else computed,
        verdict_by_clinician=by_clinician,
        needs_review=bool(check and check.needs_review and not by_clinician and not _reviewed_after(check, review)),
        stale=bool(check and changed and check.created_at < changed),
    )


def differs_from_diagnosis(state: FindingState) -> bool:
    """Whether the current result is not the diagnosis's: a clinician's override, or a cross-check computed again."""
    recomputed = state.crosscheck is not None and state.crosscheck.origin != "diagnosis"
    return state.source == CLINICIAN or recomputed


def review_sentence(state: FindingState) -> str:
    """Who last reviewed the finding (or computed its cross-check again) and when, in one sentence; empty when
    nobody has."""
    current = current_json(state)
    if state.review is None:  # without a review only a re-run changes the result
        return f"Cross-check computed again at {current['crosscheck']['at']}." if differs_from_diagnosis(state) else ""
    what = "overrides" if state.source == CLINICIAN else "confirms"
    return f"Clinician review by {current['reviewed_by']} at {current['reviewed_at']}: {what} the automatic result."


def current_crosscheck(state: FindingState) -> CrossCheck | None:
    """The current cross-check, with a clinician's verdict in place of the computed one."""
    if state.crosscheck is None:
        return None
    computed = CrossCheck.model_validate(state.crosscheck.result)
    if not state.verdict_by_clinician:
        return computed
    return computed.model_copy(
        update={"verdict": state.verdict, "summary": f"Set by a clinician; the cross-check computed {computed.verdict}"}
    )


def _at(moment: Any) -> str | None:
    """A stored UTC time as ISO 8601 with its zone."""
    return moment.isoformat(timespec="seconds") + "Z" if moment is not None else None


def _location_json(hemisphere: str | None, regions: list[str], summary: str, source: str) -> dict[str, Any]:
    return {"hemisphere": hemisphere, "regions": regions, "summary": summary, "source": source}


def automatic_json(state: FindingState) -> dict[str, Any]:
    """What localisation and the diagnosis's cross-check found, before any review."""
    location = state.automatic
    regions = list(dict.fromkeys(r.name for r in location.involved_regions))
    return {
        "location": _location_json(location.hemisphere, regions, location.summary or location.site(), AUTOMATIC),
        "verdict": state.first_verdict,
    }


def crosscheck_json(check: CrossCheckRecord | None) -> dict[str, Any] | None:
    """The cross-check the current verdict was computed in: when, why (origin) and for whom."""
    if check is None:
        return None
    return {
        "id": check.id,
        "verdict": check.verdict,
        "needs_review": check.needs_review,
        "summary": check.result.get("summary"),
        "origin": check.origin,
        "requested_by": check.requested_by,
        "at": _at(check.created_at),
    }


def current_json(state: FindingState) -> dict[str, Any]:
    """The current location and verdict, their source, the newest review's author and time, and whether
    the finding awaits a clinician's sign-off."""
    review = state.review
    if state.location_by_clinician:
        regions = list(review.location_regions or [])
        location = _location_json(review.location_hemisphere, regions, state.location.summary, CLINICIAN)
    else:
        location = automatic_json(state)["location"]
    return {
        "location": location,
        "verdict": state.verdict,
        "verdict_source": CLINICIAN if state.verdict_by_clinician else AUTOMATIC,
        "source": state.source,
        "reviewed_by": state.reviewer,
        "reviewed_at": _at(review.created_at) if review else None,
        "needs_review": state.needs_review,
        "crosscheck": crosscheck_json(state.crosscheck),
    }


def _decision_text(decision: str, value: str | None) -> str:
    """'left temporal lobe' for an override, 'confirmed (left temporal lobe)' for a confirmed override,
    'confirmed' for a confirmed automatic result."""
    if decision == "override":
        return value or ""
    return f"confirmed ({value})" if value else "confirmed"


def review_history(session: Session, finding_id: int) -> list[dict[str, Any]]:
    """The reviews of a finding, newest (current) first; the older ones are superseded."""
    rows = session.execute(_with_authors(finding_id))
    return [
        {
            "id": r.id,
            "by": name or DELETED_USER,
            "at": _at(r.created_at),
            "status": "current" if n == 0 else "superseded",
            "location_decision": r.location_decision,
            "location": _decision_text(r.location_decision, r.location_override),
            "location_hemisphere": r.location_hemisphere,
            "location_regions": r.location_regions,
            "verdict_decision": r.verdict_decision,
            "verdict": _decision_text(r.verdict_decision, r.verdict_override),
            "comment": r.comment,
        }
        for n, (r, name) in enumerate(rows)
    ]
