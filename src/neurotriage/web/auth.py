"""Users, password hashing (scrypt, stdlib), sessions and CSRF tokens.

Sessions live in a signed cookie (Starlette's SessionMiddleware); it holds the user id, the user's
session generation at sign-in and the session's CSRF token. Signing out or a new password increments
the user's generation, so every copy of an older cookie is refused from then on (every session of
that user ends, on all devices). Every state-changing request must echo the CSRF token, in a hidden
form field or an X-CSRF-Token header, so another site cannot post on a signed-in clinician's behalf.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import cache

from fastapi import Request
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from neurotriage.errors import UserError
from neurotriage.web.models import ROLES, User
from neurotriage.web.passwords import check_password

SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # OWASP's scrypt minimum; ~50 ms per hash


class LoginRequired(Exception):
    """Raised by page dependencies when nobody is signed in; the app redirects to /login."""


class CsrfFailed(Exception):
    """Raised when a state-changing request does not carry this session's CSRF token."""


def hash_password(password: str) -> str:
    """A salted scrypt hash in the form scrypt$n$r$p$salt$hash (hex)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 << 20, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the stored hash (constant-time comparison)."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=32, maxmem=64 << 20
        )
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def add_user(session: Session, username: str, password: str, role: str = "clinician") -> User:
    """Validate and add a user; UserError names the field that is wrong."""
    name = username.strip()
    if not name or len(name) > 64 or not name.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise UserError(f"username {username!r}: use 1-64 letters, digits, '.', '-' or '_'", field="username")
    check_password(password)
    check_role(role)
    if session.scalar(select(User).where(User.username == name)) is not None:
        raise UserError(f"username {name!r}: already exists", field="username")
    user = User(username=name, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def check_role(role: str) -> None:
    """Refuse a role that does not exist, naming the field."""
    if role not in ROLES:
        raise UserError(f"role {role!r}: must be one of {', '.join(ROLES)}", field="role")


def ensure_admin(session: Session, name: str | None, password: str | None) -> User | None:
    """Create the first admin with this name and password when both are given and there are no users yet."""
    if not name or not password or session.scalar(select(func.count(User.id))):
        return None
    return add_user(session, name, password, "admin")


def change_password(session: Session, user_id: int, password: str) -> None:
    """Give the user a new password (policy checked) and end every session they have."""
    check_password(password)
    session.execute(update(User).where(User.id == user_id).values(password_hash=hash_password(password)))
    end_sessions(session, user_id)


def end_sessions(session: Session, user_id: int) -> None:
    """Refuse every session cookie the user holds now, copies included."""
    session.execute(update(User).where(User.id == user_id).values(session_generation=User.session_generation + 1))


@cache
def _dummy_hash() -> str:
    """A hash to check unknown usernames against, so that they cost one scrypt like known ones."""
    return hash_password(secrets.token_urlsafe(16))


def authenticate(
    open_session: Callable[[], AbstractContextManager[Session]], username: str, password: str
) -> User | None:
    """The enabled user (detached) with these credentials, or None; one scrypt either way, so timing reveals
    nothing (a disabled user's password is checked too, and refused like a wrong one).

    The user is read in a short transaction of its own and the password checked after it ends: on
    SQLite every transaction holds the write lock, which scrypt's 50 ms must not keep from others."""
    with open_session() as session:
        user = session.scalar(select(User).where(User.username == username.strip()))
    ok = verify_password(password, user.password_hash if user else _dummy_hash())
    return user if user and ok and not user.disabled else None


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf(request: Request, submitted: str | None) -> None:
    """Refuse a state-changing request whose token does not match the session's."""
    expected = request.session.get("csrf")
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise CsrfFailed()


def sign_in(request: Request, user: User) -> None:
    """Start a fresh session for `user` (a new CSRF token too, against session fixation)."""
    request.session.clear()
    request.session["uid"] = user.id
    request.session["gen"] = user.session_generation
    request.session["csrf"] = secrets.token_urlsafe(32)
