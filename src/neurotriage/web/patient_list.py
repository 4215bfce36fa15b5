"""The patient list: one page of the patients a user may see, searched and sorted, with each one's status.

Two queries whatever the page holds: one reads the page's patients with their status and newest study
(aggregates over studies and findings joined in, no query per row), one counts every match. The care
team's filter and the search are conditions of both, so the count and the pages agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Depends, Query
from sqlalchemy import Date, Select, and_, case, exists, func, select
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.models import CrossCheckRecord, Finding, Patient, Review, Study
from neurotriage.diagnosis.queue import db_now
from neurotriage.web import access
from neurotriage.web.models import User

PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000  # keeps the offset far inside every database's integers
# In workflow order, which is the order of sorting by status.
STATUSES = (
    "no study",
    "not diagnosed",
    "queued",
    "running",
    "failed",
    "diagnosed — needs review",
    "diagnosed",
    "signed off",
)
Sort = Literal["id", "name", "born", "study", "status"]
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class Listing:
    """One page of the patient list and how it was asked for."""

    patients: list[dict[str, Any]]
    total: int
    page: int
    per_page: int
    sort: Sort
    order: Order
    q: str

    @property
    def pages(self) -> int:
        """How many pages the matches fill (at least one)."""
        return max(1, -(-self.total // self.per_page))

    def link(self, **changes: Any) -> str:
        """The list's address with some of its parameters changed (page, sort, order)."""
        per_page = None if self.per_page == PER_PAGE else self.per_page
        params = {"q": self.q, "sort": self.sort, "order": self.order, "page": self.page, "per_page": per_page}
        return "/patients?" + urlencode({k: v for k, v in (params | changes).items() if v not in ("", None)})

    def sort_link(self, column: str) -> str:
        """Sort by `column` from page one: ascending, or the other way round when it is the current sort."""
        order = "desc" if column == self.sort and self.order == "asc" else "asc"
        return self.link(sort=column, order=order, page=1)


def _study_facts(now: Any) -> Any:
    """Per patient with studies: the newest study's date (when taken, else when added) and whether any
    study is being diagnosed, waits on the queue, or failed for good without a finding."""

    def any_study(condition: Any) -> Any:
        return func.max(case((condition, 1), else_=0))

    taken = func.coalesce(Study.study_date, func.date(Study.created_at), type_=Date)
    return (
        select(
            Study.patient_id,
            func.max(taken).label("last_study"),
            any_study(and_(Study.claim_token.is_not(None), Study.lease_until >= now)).label("running"),
            any_study(Study.queued_at.is_not(None)).label("queued"),
            any_study(and_(Study.parked_at.is_not(None), ~exists().where(Finding.study_id == Study.id))).label(
                "failed"
            ),
        )
        .group_by(Study.patient_id)
        .subquery("study_facts")
    )


def _latest_findings() -> Any:
    """Per patient with findings: the newest finding."""
    return (
        select(Study.patient_id, func.max(Finding.id).label("finding_id"))
        .join(Finding, Finding.study_id == Study.id)
        .group_by(Study.patient_id)
        .subquery("latest_finding")
    )


def _status(facts: Any, latest: Any) -> Any:
    """The index in STATUSES of a patient's status: work on a study first, then its newest finding's review."""
    # Through the patient's cross-checks (patient_id is indexed, finding_id is not).
    last_check = (
        select(func.max(CrossCheckRecord.id))
        .where(CrossCheckRecord.patient_id == Patient.id, CrossCheckRecord.finding_id == latest.c.finding_id)
        .correlate(Patient, latest)
        .scalar_subquery()
    )
    flagged = exists().where(CrossCheckRecord.id == last_check, CrossCheckRecord.needs_review)
    ranked = (
        (facts.c.running == 1, "running"),
        (facts.c.queued == 1, "queued"),
        (facts.c.failed == 1, "failed"),
        (exists().where(Review.finding_id == latest.c.finding_id), "signed off"),
        (flagged, "diagnosed — needs review"),
        (latest.c.finding_id.is_not(None), "diagnosed"),
        (facts.c.patient_id.is_not(None), "not diagnosed"),
    )
    return case(*((condition, STATUSES.index(label)) for condition, label in ranked), else_=0)


def _ordering(sort: Sort, order: Order, status: Any, last_study: Any) -> list[Any]:
    """ORDER BY of a sort: the column (missing values last either way), then the id."""
    column = {
        "id": Patient.id,
        "name": Patient.name_folded,
        "born": Patient.birth_date,
        "study": last_study,
        "status": status,
    }[sort]
    keys = [column] if sort == "id" else [column, Patient.id]
    return [(key.desc() if order == "desc" else key.asc()).nulls_last() for key in keys]


def _matching(user: User, q: str) -> list[Any]:
    """The WHERE conditions: patients the user may see, matching the search."""
    return [access.visible(user), *([intake.search_condition(q)] if q.strip() else [])]


def page_query(session: Session, user: User, q: str, sort: Sort, order: Order, page: int, per_page: int) -> Select:
    """The query of one page: (Patient, status index, newest study date) rows."""
    facts, latest = _study_facts(db_now(session)), _latest_findings()
    status = _status(facts, latest).label("status")  # ordered by its label: computed once per row
    return (
        select(Patient, status, facts.c.last_study)
        .outerjoin(facts, facts.c.patient_id == Patient.id)
        .outerjoin(latest, latest.c.patient_id == Patient.id)
        .where(*_matching(user, q))
        .order_by(*_ordering(sort, order, status, facts.c.last_study))
        .limit(per_page)
        .offset((page - 1) * per_page)
    )


def list_page(
    session: Session,
    user: User,
    q: str = "",
    sort: Sort = "id",
    order: Order = "asc",
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Listing:
    """One page of the patients the user may see that match `q`, with the total count of matches."""
    total = session.scalar(select(func.count()).select_from(Patient).where(*_matching(user, q)))
    rows = session.execute(page_query(session, user, q, sort, order, page, per_page))
    patients = [
        intake.patient_summary(patient) | {"status": STATUSES[status], "last_study": _iso(last_study)}
        for patient, status, last_study in rows
    ]
    return Listing(patients, total or 0, page, per_page, sort, order, q)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def list_params(
    q: Annotated[str, Query(max_length=200)] = "",
    sort: Sort = "id",
    order: Order = "asc",
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = PER_PAGE,
) -> dict[str, Any]:
    """The list's query parameters, checked (a bad one is refused with 422)."""
    return {"q": q.strip(), "sort": sort, "order": order, "page": page, "per_page": per_page}


ListParams = Annotated[dict[str, Any], Depends(list_params)]
