"""`neurotriage serve` and `neurotriage user add`."""

from __future__ import annotations

import argparse
import getpass


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from neurotriage.web.app import create_app
    from neurotriage.web.settings import load_web_settings

    overrides = {"secure_cookies": False} if args.insecure_cookies else {}
    app = create_app(load_web_settings(**overrides))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _user_add(args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.config import load_settings
    from neurotriage.errors import UserError
    from neurotriage.web.auth import add_user

    password = load_settings().new_password or getpass.getpass(f"password for {args.username}: ")
    if not password:
        raise UserError("password: empty (type one, or set NEUROTRIAGE_NEW_PASSWORD)")
    with transaction() as session:
        user = add_user(session, args.username, password, args.role)
    print(f"added {user.role} {user.username!r} (id {user.id})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `serve` and `user` subcommands."""
    serve = sub.add_parser("serve", help="run the web app (patients, uploads, reports, viewer)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="send the session cookie over plain HTTP too (only for a trusted network without TLS)",
    )
    serve.set_defaults(handler=_serve)
    user = sub.add_parser("user", help="manage web app users")
    actions = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user (password from a prompt or NEUROTRIAGE_NEW_PASSWORD)")
    add.add_argument("username")
    add.add_argument("--role", choices=("clinician", "admin"), default="clinician")
    add.set_defaults(handler=_user_add)
