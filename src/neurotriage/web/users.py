"""Managing accounts: list, find, disable or enable, change role, delete; the last admin is kept.

The CLI (`neurotriage user ...`) and the admin page call these inside their own transaction. No
change may leave the database without an enabled admin, or nobody could manage the accounts.
Deleting a user keeps their jobs, reviews and audit entries (their user_id becomes NULL; the audit
log keeps the username), and ends their care-team access.
"""

from __future__ import annotations

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from neurotriage.errors import NotFound, UserError
from neurotriage.web.auth import check_role, end_sessions
from neurotriage.web.models import User


def list_users(session: Session) -> list[User]:
    """Every user, by username."""
    return list(session.scalars(select(User).order_by(User.username)))


def count_enabled_users(session: Session) -> int:
    """How many users may sign in."""
    return session.scalar(select(func.count(User.id)).where(User.disabled == false())) or 0


def find_user(session: Session, username: str) -> User:
    """The user with this name; NotFound naming it otherwise."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"user {username!r}: no such user", field="username")
    return user


def get_user(session: Session, user_id: int) -> User:
    """The user with this id; NotFound otherwise."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id}: no such user", field="user_id")
    return user


def _keep_an_admin(session: Session, user: User, change: str) -> None:
    """Refuse `change` when `user` is the only enabled admin.

    The enabled admins' rows are locked (PostgreSQL), so two admins disabling each other at the
    same moment cannot both succeed; SQLite's write lock serialises them anyway."""
    if user.role != "admin" or user.disabled:
        return
    admins = session.scalars(select(User.id).where(User.role == "admin", User.disabled == false()).with_for_update())
    if set(admins) <= {user.id}:
        raise UserError(
            f"user {user.username!r}: is the last enabled admin and cannot be {change}; make another user admin first",
            field="username",
        )


def set_disabled(session: Session, user: User, disabled: bool) -> None:
    """Disable a user (their sessions end at once) or enable them again."""
    if disabled:
        _keep_an_admin(session, user, "disabled")
        end_sessions(session, user.id)
    user.disabled = disabled
    session.flush()


def set_role(session: Session, user: User, role: str) -> None:
    """Give the user another role; it applies to their next request."""
    check_role(role)
    if role != "admin":
        _keep_an_admin(session, user, "demoted")
    user.role = role
    session.flush()


def delete_user(session: Session, user: User) -> None:
    """Delete the account; the records they made stay, unlinked from it."""
    _keep_an_admin(session, user, "deleted")
    session.delete(user)
    session.flush()


def check_repeated(password: str, again: str) -> None:
    """Refuse a new password whose second entry differs (a typo would lock the user out)."""
    if password != again:
        raise UserError("password_again: the two passwords differ", field="password_again")
