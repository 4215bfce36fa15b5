"""Where a finding's tumour is once clinicians have reviewed it: the newest review's location override
applied to the imaging location, for every layer that decides from the location (the CLI's `refer` as
much as the web app), so a corrected side is never undone by a later automatic decision."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.anatomy.location import Location, parse_location
from neurotriage.anatomy.override import override_location
from neurotriage.clinical.models import Finding, Review


def current_location(automatic: Location, review: Review | None) -> Location:
    """The review's location override applied to the finding's location; the finding's own without one."""
    if review is None or review.location_hemisphere is None:
        return automatic
    return override_location(automatic, review.location_hemisphere, review.location_regions or [])


def newest_review(session: Session, finding_id: int) -> Review | None:
    """The finding's newest review (the current one), or None."""
    query = select(Review).where(Review.finding_id == finding_id).order_by(Review.id.desc()).limit(1)
    return session.scalar(query)


def reviewed_location(session: Session, finding: Finding) -> Location:
    """The finding's current location: its newest review's override, else what imaging found."""
    automatic = parse_location(finding.locate, f"finding {finding.id}")
    return current_location(automatic, newest_review(session, finding.id))
