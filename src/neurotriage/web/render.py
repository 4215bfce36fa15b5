"""Server-rendered pages: Jinja2 templates with the notice, the user and the CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from neurotriage import NOTICE
from neurotriage.web.access import BREAK_GLASS, can_write
from neurotriage.web.auth import csrf_token
from neurotriage.web.models import User

# Autoescape everything: Jinja's default selection keys on ".html" and would skip "*.html.j2".
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)


def page(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template; every page carries the notice, for forms the CSRF token, and `can_write`
    (read-only users are not shown the forms that change records)."""
    base = {
        "notice": NOTICE,
        "user": user,
        "csrf": csrf_token(request),
        "can_write": can_write(user),
        "flash": request.session.pop("flash", None),
    }
    return templates.TemplateResponse(request, name, base | context, status_code=status_code)


def _signed_in(request: Request) -> User | None:
    """A stand-in for the session's user on pages rendered outside a route (no database read)."""
    uid = request.session.get("uid")
    return User(id=uid, username="") if uid else None


def error_page(request: Request, status_code: int, heading: str, message: str, back: str | None = None) -> HTMLResponse:
    """A page explaining why a request was refused."""
    user = _signed_in(request)
    return page(request, "error.html.j2", user, status_code, heading=heading, message=message, back=back)


def no_access_page(request: Request, patient_id: int) -> HTMLResponse:
    """The 403 page of a patient outside the user's care team (no record shown), with the break-glass form;
    after a grant, a refused page that was read (GET) opens again."""
    back = request.url.path if request.method == "GET" else f"/patients/{patient_id}"
    hours = BREAK_GLASS.total_seconds() / 3600
    return page(
        request, "no_access.html.j2", _signed_in(request), 403, patient_id=patient_id, back=back, hours=f"{hours:g}"
    )
