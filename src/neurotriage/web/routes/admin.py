"""The admin's user page: list, add, disable or enable, change role, reset password, delete (confirmed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from neurotriage.errors import NotFound, UserError
from neurotriage.web.auth import add_user, change_password, check_csrf
from neurotriage.web.deps import AdminUser, OpenSession, SessionDep, audit
from neurotriage.web.models import ROLES, User
from neurotriage.web.render import page
from neurotriage.web.users import delete_user, get_user, list_users, set_disabled, set_role

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=64)]
Password = Annotated[str, Form(max_length=1024)]
USERS = "/admin/users"
# What one change did, for the audit log: (action, detail).
Change = Callable[[Session, User], tuple[str, dict[str, Any] | None]]


def _users_page(request: Request, db: OpenSession, admin: User, status_code: int = 200, **context: Any):
    """The user list with its forms; `context` carries a refused change's error and the add form's values."""
    with db() as session:
        users = list_users(session)
    return page(request, "admin_users.html.j2", admin, status_code, users=users, roles=ROLES, **context)


def _change(request: Request, db: OpenSession, admin: User, user_id: int, csrf_token: str, change: Change):
    """Apply `change` to one user and audit it in one transaction; a refusal shows the page with its reason."""
    check_csrf(request, csrf_token)
    try:
        with db() as session:
            user = get_user(session, user_id)
            action, detail = change(session, user)
            audit(session, admin, action, f"user:{user.username}", detail)
    except NotFound:
        raise
    except UserError as exc:
        return _users_page(request, db, admin, 400, error=exc.message)
    return RedirectResponse(USERS, status_code=303)


@router.get(USERS)
def users(request: Request, db: SessionDep, admin: AdminUser):
    """Every account with its role and state, and the forms that change them."""
    return _users_page(request, db, admin)


@router.post(USERS)
def add(
    request: Request,
    db: SessionDep,
    admin: AdminUser,
    username: Text,
    password: Password,
    role: Text = "clinician",
    csrf_token: Text = "",
):
    """Add an account (the password policy applies)."""
    check_csrf(request, csrf_token)
    try:
        with db() as session:
            user = add_user(session, username, password, role)
            audit(session, admin, "user_create", f"user:{user.username}", {"role": role})
    except UserError as exc:
        return _users_page(request, db, admin, 400, error=exc.message, form={"username": username, "role": role})
    return RedirectResponse(USERS, status_code=303)


@router.post(USERS + "/{user_id}/disable")
def disable(request: Request, db: SessionDep, admin: AdminUser, user_id: int, csrf_token: Text = ""):
    """Stop the user signing in; their sessions end at once."""

    def change(session: Session, user: User) -> tuple[str, None]:
        set_disabled(session, user, True)
        return "user_disable", None

    return _change(request, db, admin, user_id, csrf_token, change)


@router.post(USERS + "/{user_id}/enable")
def enable(request: Request, db: SessionDep, admin: AdminUser, user_id: int, csrf_token: Text = ""):
    """Let a disabled user sign in again."""

    def change(session: Session, user: User) -> tuple[str, None]:
        set_disabled(session, user, False)
        return "user_enable", None

    return _change(request, db, admin, user_id, csrf_token, change)


@router.post(USERS + "/{user_id}/role")
def role(request: Request, db: SessionDep, admin: AdminUser, user_id: int, role: Text, csrf_token: Text = ""):
    """Give the user another role."""

    def change(session: Session, user: User) -> tuple[str, dict[str, str]]:
        before = user.role
        set_role(session, user, role)
        return "role_change", {"from": before, "to": role}

    return _change(request, db, admin, user_id, csrf_token, change)


@router.post(USERS + "/{user_id}/password")
def reset_password(
    request: Request, db: SessionDep, admin: AdminUser, user_id: int, password: Password, csrf_token: Text = ""
):
    """Set a new password for the user (the policy applies); their sessions end."""

    def change(session: Session, user: User) -> tuple[str, None]:
        change_password(session, user.id, password)
        return "password_reset", None

    return _change(request, db, admin, user_id, csrf_token, change)


@router.get(USERS + "/{user_id}/delete")
def confirm_delete(request: Request, db: SessionDep, admin: AdminUser, user_id: int):
    """Ask before deleting an account."""
    with db() as session:
        user = get_user(session, user_id)
    return page(request, "admin_user_delete.html.j2", admin, target=user)


@router.post(USERS + "/{user_id}/delete")
def delete(request: Request, db: SessionDep, admin: AdminUser, user_id: int, csrf_token: Text = ""):
    """Delete the account; their jobs, reviews and audit entries stay."""

    def change(session: Session, user: User) -> tuple[str, dict[str, str]]:
        if user.id == admin.id:  # the audit row of the deletion refers to the admin, who must still exist
            raise UserError(f"user {user.username!r}: you cannot delete your own account; another admin can")
        delete_user(session, user)
        return "user_delete", {"role": user.role}

    return _change(request, db, admin, user_id, csrf_token, change)
