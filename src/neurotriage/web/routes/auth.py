"""Sign in and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from neurotriage.web.auth import authenticate, check_csrf, end_sessions, sign_in
from neurotriage.web.deps import CurrentUser, SessionDep, audit, client_detail
from neurotriage.web.render import page

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    """The patient list is the start page."""
    return RedirectResponse("/patients", status_code=303)


@router.get("/login")
def login_form(request: Request):
    """The sign-in form."""
    return page(request, "login.html.j2", None)


@router.post("/login")
def login(
    request: Request,
    db: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
):
    """Check the credentials; a wrong password is refused with the form shown again, and after a few
    failures of the account or the client address further attempts wait (429, Retry-After). Every
    sign-in and failure is audited with the client's address and agent, and so is the first refusal
    of each wait."""
    check_csrf(request, csrf_token)
    throttle = request.app.state.throttle
    client = request.client.host if request.client else "-"
    wait_s = throttle.retry_after_s(username, client)
    if wait_s:
        error = f"Too many failed sign-ins: try again in {wait_s} seconds."
        response = page(request, "login.html.j2", None, 429, error=error)
        response.headers["Retry-After"] = str(wait_s)
        if throttle.first_refusal(username, client):
            detail = client_detail(request) | {"wait_s": wait_s}
            with db() as session:
                audit(session, None, "login_throttled", f"user:{username[:64]}", detail)
        return response
    user = authenticate(db, username, password)
    throttle.record(username, client, ok=user is not None)
    with db() as session:
        audit(session, user, "login" if user else "login_failed", f"user:{username[:64]}", client_detail(request))
    if user is None:
        return page(request, "login.html.j2", None, 401, error="Wrong username or password.")
    sign_in(request, user)
    return RedirectResponse("/patients", status_code=303)


@router.post("/logout")
def logout(request: Request, db: SessionDep, user: CurrentUser, csrf_token: Annotated[str, Form()] = ""):
    """End every session of the user on the server (copies of the cookie included), then this one."""
    check_csrf(request, csrf_token)
    with db() as session:
        end_sessions(session, user.id)
        audit(session, user, "logout", f"user:{user.username}")
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
