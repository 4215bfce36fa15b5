"""Server-rendered pages: Jinja2 templates with the notice, the user and the CSRF token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from neurotriage import NOTICE
from neurotriage.web.auth import csrf_token
from neurotriage.web.models import User

# Autoescape everything: Jinja's default selection keys on ".html" and would skip "*.html.j2".
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)
)


def page(request: Request, name: str, user: User | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page template; every page carries the notice and, for forms, the CSRF token."""
    base = {"notice": NOTICE, "user": user, "csrf": csrf_token(request), "flash": request.session.pop("flash", None)}
    return templates.TemplateResponse(request, name, base | context, status_code=status_code)


def error_page(request: Request, status_code: int, heading: str, message: str, back: str | None = None) -> HTMLResponse:
    """A page explaining why a request was refused."""
    uid = request.session.get("uid")
    user = User(id=uid, username="") if uid else None
    return page(request, "error.html.j2", user, status_code, heading=heading, message=message, back=back)
