"""The DICOM node's commands: `neurotriage listen` (receive studies by C-STORE until stopped) and
`neurotriage send` (queue DICOM files for a PACS and send them, retry what is due, or show the outbox)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from neurotriage.pacs.send import Destination, OutboxItem


def register(sub: argparse._SubParsersAction) -> None:
    """Add `listen` and `send`."""
    _register_listen(sub)
    _register_send(sub)


def _register_listen(sub: argparse._SubParsersAction) -> None:
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


def _register_send(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "send",
        help="send DICOM files to a PACS by C-STORE through the outbox (retried with back-off while it is down)",
        description="Queue DICOM files for a destination and send them now; a destination that is down keeps them "
        "queued, and `send --pending` retries what is due. Exits 1 when something was not delivered.",
    )
    p.add_argument("paths", type=Path, nargs="*", metavar="FILE_OR_FOLDER", help="DICOM files, or folders of them")
    p.add_argument(
        "--to",
        dest="send_to",
        metavar="AET@host:port",
        help="the destination (default: NEUROTRIAGE_DICOM_SEND_TO)",
    )
    p.add_argument("--pending", action="store_true", help="send every queued item whose next attempt is due")
    p.add_argument("--status", action="store_true", help="show the outbox of each destination")
    p.add_argument("--json", action="store_true", help="with --status: print it as JSON")
    p.set_defaults(handler=_send)


def _send(args: argparse.Namespace) -> int:
    from neurotriage.errors import UserError

    modes = [flag for flag, chosen in (("--pending", args.pending), ("--status", args.status)) if chosen]
    if len(modes) > 1 or (modes and (args.paths or args.send_to)):
        raise UserError(f"{modes[0]}: give no FILE_OR_FOLDER, --to or other mode with it")
    if args.json and not args.status:
        raise UserError("--json: only with --status")
    if args.status:
        return _print_status(args.json)
    if args.pending:
        return _send_pending()
    if not args.paths:
        raise UserError("send: give FILE_OR_FOLDER..., or --pending, or --status")
    return _send_files(args.paths, args.send_to)


def _send_files(paths: list[Path], given: str | None) -> int:
    from neurotriage.errors import UserError
    from neurotriage.pacs.send import dicom_files, resolve_destination

    destination = resolve_destination(given)
    if destination is None:
        raise UserError("no destination: give one, or set NEUROTRIAGE_DICOM_SEND_TO", field="send_to")
    return 0 if send_now(dicom_files(paths), destination).state == "sent" else 1


def send_now(files: list[Path], destination: Destination, stream: TextIO | None = None) -> OutboxItem:
    """Queue `files` for `destination`, send them at once and print one line on the outcome; returns the item."""
    from neurotriage.pacs.send import describe, queue_results, read_item, send_pending

    item = queue_results(files, destination)
    send_pending(items=[item])
    state = read_item(item)
    print(describe(state), file=stream or sys.stdout)
    return state


def send_report(report_dir: Path, destination: Destination, stream: TextIO | None = None) -> int:
    """Queue and send a report folder's DICOM objects, printing one line; 0 unless they failed for good."""
    from neurotriage.pacs.send import report_objects

    files = report_objects(report_dir)
    if not files:
        print(f"nothing sent to {destination.ae_title}: the report has no DICOM objects", file=stream or sys.stdout)
        return 0
    return 1 if send_now(files, destination, stream).state == "failed" else 0


def _send_pending() -> int:
    from neurotriage.pacs.send import describe, send_pending

    summary = send_pending()
    for view in summary.items:
        print(f"{view.destination}: {describe(view)}")
    print(f"{summary.sent} sent, {summary.retrying} still queued, {summary.failed} failed.")
    return 0 if summary.sent == len(summary.items) else 1


def _print_status(as_json: bool) -> int:
    from neurotriage.pacs.send import describe, outbox_status

    status = outbox_status()
    if as_json:
        print(json.dumps(status.model_dump(mode="json"), indent=2))
        return 0
    if not status.destinations:
        print("The outbox is empty.")
    for dest in status.destinations:
        print(f"{dest.destination}: {dest.queued} queued, {dest.sent} sent, {dest.failed} failed")
        for view in dest.items:
            print(f"  {Path(view.item).name}: {len(view.files)} files, {view.attempts} attempts, {describe(view)}")
    return 0
