"""`neurotriage serve` and `neurotriage user list | add | disable | enable | delete | passwd | role`."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from neurotriage.web.models import User
    from neurotriage.web.settings import WebSettings

ROLES_TEXT = "clinician, admin or read_only"  # checked by the library (web.models.ROLES), not imported for --help


def _is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (a name other than localhost counts as not)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def check_serve(settings: WebSettings, host: str, allow_no_users: bool) -> list[str]:
    """Refuse to serve a database nobody can sign in to (UserError); the warnings to print before serving."""
    from neurotriage.clinical.db import transaction
    from neurotriage.errors import UserError
    from neurotriage.web.passwords import check_password
    from neurotriage.web.users import count_enabled_users

    with transaction(settings.database_url) as session:
        users = count_enabled_users(session)
    first_admin = bool(settings.admin_user and settings.admin_password)
    if not users and first_admin:
        try:
            check_password(settings.admin_password)
        except UserError as exc:
            raise UserError(f"NEUROTRIAGE_ADMIN_PASSWORD: {exc.message.removeprefix('password: ')}") from None
    elif not users and not allow_no_users:
        raise UserError(
            "no user can sign in: add an admin with `neurotriage user add NAME --role admin` (or set "
            "NEUROTRIAGE_ADMIN_USER and NEUROTRIAGE_ADMIN_PASSWORD), or pass --allow-no-users to start anyway"
        )
    if settings.secure_cookies and not _is_loopback(host):
        return [
            f"warning: serving plain HTTP on {host} with Secure session cookies: a browser that reaches it over "
            "http:// never sends the cookie back, so every sign-in fails with 'CSRF check failed'. Serve it "
            "behind an HTTPS reverse proxy, or on a trusted network only, add --insecure-cookies."
        ]
    return []


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from neurotriage.web.app import create_app
    from neurotriage.web.settings import load_web_settings

    overrides = {"secure_cookies": False} if args.insecure_cookies else {}
    settings = load_web_settings(**overrides)
    for warning in check_serve(settings, args.host, args.allow_no_users):
        print(warning, file=sys.stderr)
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _new_password(username: str) -> str:
    """The new password from NEUROTRIAGE_NEW_PASSWORD, or typed twice at a prompt."""
    from neurotriage.config import load_settings
    from neurotriage.errors import UserError
    from neurotriage.web.users import check_repeated

    password = load_settings().new_password
    if password:
        return password
    try:
        password = getpass.getpass(f"password for {username}: ")
        if not password:
            raise UserError("password: empty (type one, or set NEUROTRIAGE_NEW_PASSWORD)")
        check_repeated(password, getpass.getpass(f"password for {username} again: "))
    except EOFError:
        message = "password: nothing to read it from; type it at a terminal or set NEUROTRIAGE_NEW_PASSWORD"
        raise UserError(message) from None
    return password


def _with_user(args: argparse.Namespace, change: Callable[[Session, User], str]) -> int:
    """Apply `change` to the user named on the command line in one transaction; print its summary."""
    from neurotriage.clinical.db import transaction
    from neurotriage.web.users import find_user

    with transaction() as session:
        summary = change(session, find_user(session, args.username))
    print(summary)
    return 0


def _user_list(_args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.web.users import list_users

    with transaction() as session:
        rows = [
            (u.username, u.role, "yes" if u.disabled else "no", u.created_at.isoformat(sep=" ", timespec="minutes"))
            for u in list_users(session)
        ]
    if not rows:
        print("no users")
        return 0
    rows.insert(0, ("name", "role", "disabled", "created"))
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.web.auth import add_user, check_role

    check_role(args.role)  # before asking for a password
    password = _new_password(args.username)
    with transaction() as session:
        user = add_user(session, args.username, password, args.role)
    print(f"added {user.role} {user.username!r} (id {user.id})")
    return 0


def _user_disable(args: argparse.Namespace) -> int:
    from neurotriage.web.users import set_disabled

    def change(session: Session, user: User) -> str:
        set_disabled(session, user, True)
        return f"disabled {user.username!r}: they cannot sign in and their sessions have ended"

    return _with_user(args, change)


def _user_enable(args: argparse.Namespace) -> int:
    from neurotriage.web.users import set_disabled

    def change(session: Session, user: User) -> str:
        set_disabled(session, user, False)
        return f"enabled {user.username!r}: they can sign in again"

    return _with_user(args, change)


def _confirmed(question: str) -> bool:
    """Whether the user answers yes; no answer (end of input) is no."""
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _user_delete(args: argparse.Namespace) -> int:
    from neurotriage.web.users import delete_user

    question = f"delete user {args.username!r}? Their jobs, reviews and audit entries stay, without the account."
    if not args.yes and not _confirmed(question):
        print(f"not deleted: {args.username!r}")
        return 1

    def change(session: Session, user: User) -> str:
        delete_user(session, user)
        return f"deleted {user.username!r}"

    return _with_user(args, change)


def _user_passwd(args: argparse.Namespace) -> int:
    from neurotriage.web.auth import change_password

    password = _new_password(args.username)

    def change(session: Session, user: User) -> str:
        change_password(session, user.id, password)
        return f"new password for {user.username!r}: their sessions have ended"

    return _with_user(args, change)


def _user_role(args: argparse.Namespace) -> int:
    from neurotriage.web.users import set_role

    def change(session: Session, user: User) -> str:
        set_role(session, user, args.role)
        return f"{user.username!r} is now {user.role}"

    return _with_user(args, change)


def _register_serve(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the web app (patients, uploads, reports, viewer)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="send the session cookie over plain HTTP too (only for a trusted network without TLS)",
    )
    serve.add_argument(
        "--allow-no-users", action="store_true", help="start even though no user can sign in (users added later)"
    )
    serve.set_defaults(handler=_serve)


def _register_user(sub: argparse._SubParsersAction) -> None:
    user = sub.add_parser("user", help="manage web app users")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="list users: name, role, disabled, created").set_defaults(handler=_user_list)
    add = actions.add_parser("add", help="add a user (password from a prompt or NEUROTRIAGE_NEW_PASSWORD)")
    add.add_argument("username")
    add.add_argument("--role", default="clinician", help=f"{ROLES_TEXT} (default: clinician)")
    add.set_defaults(handler=_user_add)
    for name, handler, text in (
        ("disable", _user_disable, "stop a user signing in and end their sessions"),
        ("enable", _user_enable, "let a disabled user sign in again"),
        ("passwd", _user_passwd, "set a user's password (prompt or NEUROTRIAGE_NEW_PASSWORD); ends their sessions"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("username")
        action.set_defaults(handler=handler)
    delete = actions.add_parser("delete", help="delete a user; their jobs, reviews and audit entries stay")
    delete.add_argument("username")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=_user_delete)
    role = actions.add_parser("role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("role", help=ROLES_TEXT)
    role.set_defaults(handler=_user_role)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` and `user` subcommands."""
    _register_serve(sub)
    _register_user(sub)
