"""`neurotriage listen`: receive studies by DICOM C-STORE until stopped."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    """Add `listen`."""
    p = sub.add_parser(
        "listen",
        help="receive MR studies by DICOM C-STORE (a storage SCP) until stopped",
        description="Receive MR studies by DICOM C-STORE into NEUROTRIAGE_HOME/dicom/inbox, one folder per study. "
        "A study is complete once no instance has arrived for --stable-seconds. SIGTERM or Ctrl-C stops it; "
        "studies left open are picked up at the next start.",
    )
    p.add_argument("--ae-title", default="NEUROTRIAGE", help="this node's AE title (default: NEUROTRIAGE)")
    p.add_argument("--port", type=int, default=11112, help="port (default: 11112)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--stable-seconds",
        type=float,
        help="quiet period that completes a study (default: NEUROTRIAGE_DICOM_STABLE_S, else 30)",
    )
    p.add_argument(
        "--allow-ae",
        nargs="+",
        metavar="AE",
        help="calling AE titles accepted (default: NEUROTRIAGE_DICOM_ALLOWED_AES, comma-separated; none: any)",
    )
    p.add_argument(
        "--send-to",
        metavar="AET@HOST:PORT",
        help="where results go back (default: NEUROTRIAGE_DICOM_SEND_TO; none: results stay in the reports)",
    )
    p.add_argument(
        "--workers",
        type=int,
        choices=(0, 1),
        default=1,
        help="diagnose queued studies in this process (1, the default) or only receive and queue them (0)",
    )
    p.set_defaults(handler=_listen)


def _listen(args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.config import ae_title, load_settings
    from neurotriage.errors import UserError
    from neurotriage.pacs.inbox import Inbox, inbox_root
    from neurotriage.pacs.listener import ListenerConfig, listen
    from neurotriage.pacs.node import Node
    from neurotriage.pacs.send import resolve_destination

    settings = load_settings()
    stable_s = settings.dicom_stable_s if args.stable_seconds is None else args.stable_seconds
    if not stable_s > 0:
        raise UserError(f"--stable-seconds: must be a positive number of seconds, got {stable_s:g}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port: must be 0 to 65535, got {args.port}")
    allowed = settings.dicom_allowed_aes if args.allow_ae is None else args.allow_ae
    config = ListenerConfig(
        ae_title=ae_title(args.ae_title, "--ae-title"),
        host=args.host,
        port=args.port,
        allowed_aes=tuple(ae_title(title, "--allow-ae") for title in allowed),
    )
    destination = resolve_destination(args.send_to)
    with transaction():  # complete studies are filed in the database: refuse to start without one
        pass
    inbox = Inbox(inbox_root(), stable_s)
    node = Node(inbox, destination)
    _log_to_stderr()
    try:
        listen(inbox, config, node.hand_off, node.run_worker if args.workers else None)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise UserError(f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}") from None
    return 0


def _log_to_stderr() -> None:
    """One timestamped line per event of the listener; pynetdicom's own chatter only from warnings up."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.WARNING)
    logging.getLogger("neurotriage.pacs").setLevel(logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
