"""The audit log for admins: a page with filters (user, patient, action, days) and paging, and its JSON twin."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from neurotriage.errors import UserError
from neurotriage.web.audit_log import AuditQuery, actions_present, find_events, parse_query
from neurotriage.web.deps import AdminUser, SessionDep, audit
from neurotriage.web.render import page
from neurotriage.web.schemas import AuditEventOut

router = APIRouter()


def given_filters(
    user: str = "",
    patient: str = "",
    action: str = "",
    since: Annotated[str, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")] = "",
    until: Annotated[str, Query(alias="to", description="last day, YYYY-MM-DD (UTC), included")] = "",
    page: str = "",
) -> dict[str, str]:
    """The filters as the query string gives them, unchecked (`parse_query` checks them)."""
    return {"user": user, "patient": patient, "action": action, "from": since, "to": until, "page": page}


GivenFilters = Annotated[dict[str, str], Depends(given_filters)]


def _link(path: str, query: AuditQuery, page_number: int) -> str:
    return f"{path}?{urlencode(query.fields(page=page_number))}"


@router.get("/admin/audit", include_in_schema=False)
def audit_page(request: Request, db: SessionDep, admin: AdminUser, given: GivenFilters):
    """The newest matching events, a page at a time; a bad filter is shown beside its control."""
    try:
        query, error = parse_query(given), None
    except UserError as exc:
        query, error = None, exc
    with db() as session:
        events, more = find_events(session, query) if query else ([], False)
        actions = actions_present(session)
        if query:
            audit(session, admin, "view", "audit", {"filter": query.fields()})
    context = {"form": given, "error": error, "events": events, "actions": actions}
    if query:
        path = request.url.path
        context["previous"] = _link(path, query, query.page - 1) if query.page > 1 else None
        context["next"] = _link(path, query, query.page + 1) if more else None
        context["page_number"] = query.page
    return page(request, "audit.html.j2", admin, 400 if error else 200, **context)


@router.get("/api/audit", response_model=list[AuditEventOut], tags=["api"])
def audit_log(
    request: Request,
    response: Response,
    db: SessionDep,
    admin: AdminUser,
    given: GivenFilters,
    limit: Annotated[str, Query(description="events per page, 1 to 1000")] = "",
) -> Any:
    """The newest matching events (admins only); a Link header (rel="next") points at the next page, if any."""
    query = parse_query(given | {"limit": limit})
    with db() as session:
        events, more = find_events(session, query)
        audit(session, admin, "view", "audit", {"filter": query.fields(), "via": "api"})
    if more:
        response.headers["Link"] = f'<{_link(request.url.path, query, query.page + 1)}>; rel="next"'
    return events
