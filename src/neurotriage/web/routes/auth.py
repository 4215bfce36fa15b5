"""Sign in and sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from neurotriage.web.auth import authenticate, check_csrf, sign_in
from neurotriage.web.deps import SessionDep, audit
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
    """Check the credentials; a wrong password is refused with the form shown again."""
    check_csrf(request, csrf_token)
    with db() as session:
        user = authenticate(session, username, password)
        audit(session, user, "login" if user else "login_failed", f"user:{username[:64]}")
    if user is None:
        return page(request, "login.html.j2", None, 401, error="Wrong username or password.")
    sign_in(request, user)
    return RedirectResponse("/patients", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = ""):
    """End the session."""
    check_csrf(request, csrf_token)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
