"""Request dependencies shared by the routers: the database, the signed-in user, auditing.

`SessionDep` gives a handler a function that opens one gated transaction per call, rather than
one session for the whole request: a handler commits before it redirects or queues a job, and the
write gate is taken and released by the same thread (FastAPI may close a yielded dependency on
another worker thread than the one that opened it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from neurotriage.clinical.db import transaction
from neurotriage.errors import Forbidden
from neurotriage.web.audit_log import patient_of
from neurotriage.web.auth import LoginRequired
from neurotriage.web.models import AuditEvent, User
from neurotriage.web.settings import WebSettings

OpenSession = Callable[[], AbstractContextManager[Session]]
CLIENT_CHARS = 64  # longer than any IPv6 address with a zone
USER_AGENT_CHARS = 300


def settings(request: Request) -> WebSettings:
    """The app's settings."""
    return request.app.state.settings


@contextmanager
def db(request: Request) -> Iterator[Session]:
    """One transaction on the app's database (commit at the end, roll back on error), gated."""
    with request.app.state.gate.held(), transaction(settings(request).database_url) as session:
        yield session


def session_opener(request: Request) -> OpenSession:
    """A function opening one gated transaction on the app's database per call."""
    return lambda: db(request)


def require_user(request: Request) -> User:
    """The signed-in user (detached); raises LoginRequired when nobody is signed in, the session has ended
    or the user is disabled."""
    uid = request.session.get("uid")
    if uid is None:
        raise LoginRequired()
    with db(request) as session:
        user = session.get(User, uid)
    # Deleted, disabled, or signed out since.
    if user is None or user.disabled or user.session_generation != request.session.get("gen"):
        request.session.clear()
        raise LoginRequired()
    return user


def require_admin(user: Annotated[User, Depends(require_user)]) -> User:
    """The signed-in user when an admin; 403 otherwise."""
    if user.role != "admin":
        raise Forbidden("admins only")
    return user


SessionDep = Annotated[OpenSession, Depends(session_opener)]
SettingsDep = Annotated[WebSettings, Depends(settings)]
CurrentUser = Annotated[User, Depends(require_user)]
AdminUser = Annotated[User, Depends(require_admin)]


def client_detail(request: Request) -> dict[str, str]:
    """The client's address and user agent, cut to a sane length, for the audit detail of a sign-in."""
    return {
        "ip": (request.client.host if request.client else "-")[:CLIENT_CHARS],
        "user_agent": request.headers.get("user-agent", "")[:USER_AGENT_CHARS],
    }


def audit(
    session: Session,
    user: User | None,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    *,
    patient_id: int | None = None,
) -> None:
    """Record who did what to which record, in the caller's transaction; the patient it concerns is
    `patient_id`, else the one the target or the detail names (`patient_of`)."""
    session.add(
        AuditEvent(
            user_id=user.id if user else None,
            username=user.username if user else "-",
            action=action,
            target=target,
            detail=detail,
            patient_id=patient_id if patient_id is not None else patient_of(target, detail),
        )
    )
