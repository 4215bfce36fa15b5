"""Request helpers shared by the routers: the database session, the signed-in user, auditing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from neurotriage.clinical.db import transaction
from neurotriage.web.auth import LoginRequired
from neurotriage.web.models import AuditEvent, User
from neurotriage.web.settings import WebSettings


def settings(request: Request) -> WebSettings:
    """The app's settings."""
    return request.app.state.settings


@contextmanager
def db(request: Request) -> Iterator[Session]:
    """One transaction on the app's database (commit at the end, roll back on error), gated."""
    with request.app.state.gate.held(), transaction(settings(request).database_url) as session:
        yield session


def require_user(request: Request) -> User:
    """The signed-in user (detached); raises LoginRequired when nobody is signed in."""
    uid = request.session.get("uid")
    if uid is None:
        raise LoginRequired()
    with db(request) as session:
        user = session.get(User, uid)
    if user is None:  # deleted since signing in
        request.session.clear()
        raise LoginRequired()
    return user


def audit(session: Session, user: User | None, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
    """Record who did what to which record, in the caller's transaction."""
    session.add(
        AuditEvent(
            user_id=user.id if user else None,
            username=user.username if user else "-",
            action=action,
            target=target,
            detail=detail,
        )
    )
