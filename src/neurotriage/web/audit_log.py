"""The audit log: the patient an event concerns, and the admin's view of the log (filters, newest first, by page).

Filters arrive as query-string text and are checked here, each refusal naming its field (`user`, `patient`,
`action`, `from`, `to`, `page`, `limit`), so the page can show it beside the control and the API answer 400.
Times are stored and filtered in UTC; `from` and `to` are days, both included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from neurotriage.errors import UserError
from neurotriage.web.models import AuditEvent

PATIENT_TARGET = re.compile(r"patient:(\d{1,10})(?:/|$)")
MAX_ID = 2**31 - 1  # the largest key an INTEGER column holds on PostgreSQL
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000
TEXT_LIMITS = {"user": 64, "action": 32}  # the columns' lengths


def patient_of(target: str, detail: Mapping[str, Any] | None) -> int | None:
    """The patient an event concerns, from a target "patient:<id>[/...]" or a detail {"patient": id}; None
    when neither names one, or the number cannot be a patient's (a mistyped URL must not break the insert)."""
    match = PATIENT_TARGET.match(target)
    value = int(match.group(1)) if match else (detail or {}).get("patient")
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID
    return value if valid else None


@dataclass(frozen=True)
class AuditQuery:
    """Which events to show: by or about a user, of a patient, of one action, between two days; which page."""

    user: str | None = None
    patient: int | None = None
    action: str | None = None
    since: date | None = None
    until: date | None = None
    page: int = 1
    limit: int = PAGE_SIZE

    def fields(self, **changes: Any) -> dict[str, str]:
        """The query string that asks for this (with `changes`), blanks and defaults left out."""
        values = asdict(self) | changes
        named = {"from": values.pop("since"), "to": values.pop("until")} | values
        defaults = {"page": 1, "limit": PAGE_SIZE}
        return {k: str(v) for k, v in named.items() if v is not None and defaults.get(k) != v}


def _number(field: str, text: str, low: int, high: int, what: str) -> int:
    if not text.isdigit() or not low <= int(text) <= high:
        raise UserError(f"{field}: must be {what} from {low:,} to {high:,}, not {text!r}", field=field)
    return int(text)


def _day(field: str, text: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{field}: must be a date as YYYY-MM-DD, not {text!r}", field=field) from None


def parse_query(given: Mapping[str, str]) -> AuditQuery:
    """The filters of a query string (`user`, `patient`, `action`, `from`, `to`, `page`, `limit`), checked;
    blank means any."""
    text = {k: (given.get(k) or "").strip() for k in ("user", "patient", "action", "from", "to", "page", "limit")}
    for field, longest in TEXT_LIMITS.items():
        if len(text[field]) > longest:
            raise UserError(f"{field}: at most {longest} characters", field=field)
    since, until = _day("from", text["from"]), _day("to", text["to"])
    if since and until and since > until:
        raise UserError(f"to: {until} is before from ({since})", field="to")
    return AuditQuery(
        user=text["user"] or None,
        patient=_number("patient", text["patient"], 1, MAX_ID, "a patient number") if text["patient"] else None,
        action=text["action"] or None,
        since=since,
        until=until,
        page=_number("page", text["page"], 1, MAX_PAGE, "a page number") if text["page"] else 1,
        limit=_number("limit", text["limit"], 1, MAX_PAGE_SIZE, "a number of events") if text["limit"] else PAGE_SIZE,
    )


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    """The WHERE clauses of a query; a user matches the events they did and those about their account."""
    found: list[ColumnElement[bool]] = []
    if query.user:
        found.append(or_(AuditEvent.username == query.user, AuditEvent.target == f"user:{query.user}"))
    if query.patient is not None:
        found.append(AuditEvent.patient_id == query.patient)
    if query.action:
        found.append(AuditEvent.action == query.action)
    if query.since:
        found.append(AuditEvent.at >= datetime.combine(query.since, time.min))
    if query.until:
        found.append(AuditEvent.at <= datetime.combine(query.until, time.max))
    return found


def find_events(session: Session, query: AuditQuery) -> tuple[list[dict[str, Any]], bool]:
    """One page of the matching events, newest first, and whether another page follows."""
    rows = session.scalars(
        select(AuditEvent).where(*_conditions(query)).order_by(AuditEvent.id.desc())
        .offset((query.page - 1) * query.limit).limit(query.limit + 1)
    ).all()  # fmt: skip
    return [event_row(e) for e in rows[: query.limit]], len(rows) > query.limit


def actions_present(session: Session) -> list[str]:
    """Every action the log holds, for the filter's choices."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))


def event_row(event: AuditEvent) -> dict[str, Any]:
    """An event as the page and the API show it."""
    return {
        "at": event.at.isoformat(timespec="seconds"),
        "user": event.username,
        "action": event.action,
        "target": event.target,
        "patient_id": event.patient_id,
        "detail": event.detail,
    }
