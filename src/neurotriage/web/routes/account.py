"""The signed-in user's own account: change their password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from neurotriage.errors import UserError
from neurotriage.web.auth import authenticate, change_password, check_csrf, sign_in
from neurotriage.web.deps import CurrentUser, SessionDep, audit
from neurotriage.web.models import User
from neurotriage.web.passwords import check_password
from neurotriage.web.render import page
from neurotriage.web.users import check_repeated

router = APIRouter(include_in_schema=False)
Password = Annotated[str, Form(max_length=1024)]


@router.get("/account")
def account(request: Request, user: CurrentUser, changed: bool = False):
    """The password form; after a change, says that the other sessions have ended."""
    return page(request, "account.html.j2", user, changed=changed)


@router.post("/account/password")
def new_password(
    request: Request,
    db: SessionDep,
    user: CurrentUser,
    current_password: Password,
    password: Password,
    password_again: Password,
    csrf_token: Annotated[str, Form()] = "",
):
    """Change the user's own password: the current one is checked (and throttled like a sign-in), every
    other session ends, and this one goes on in the new session generation."""
    check_csrf(request, csrf_token)
    throttle = request.app.state.throttle
    client = request.client.host if request.client else "-"
    wait_s = throttle.retry_after_s(user.username, client)
    if wait_s:
        error = f"Too many wrong passwords: try again in {wait_s} seconds."
        response = page(request, "account.html.j2", user, 429, error=error)
        response.headers["Retry-After"] = str(wait_s)
        return response
    try:
        check_repeated(password, password_again)
        check_password(password)
        ok = authenticate(db, user.username, current_password) is not None
        throttle.record(user.username, client, ok=ok)
        if not ok:
            with db() as session:
                audit(session, user, "password_change_failed", f"user:{user.username}")
            raise UserError("current_password: wrong password", field="current_password")
        with db() as session:
            change_password(session, user.id, password)
            audit(session, user, "password_change", f"user:{user.username}")
            renewed = session.get(User, user.id)
    except UserError as exc:
        return page(request, "account.html.j2", user, 400, error=exc.message)
    sign_in(request, renewed)
    return RedirectResponse("/account?changed=1", status_code=303)
