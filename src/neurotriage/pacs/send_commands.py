"""`neurotriage send`: queue DICOM files for a PACS and send them, retry what is due, or show the outbox."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from neurotriage.pacs.send import Destination, OutboxItem


def register(sub: argparse._SubParsersAction) -> None:
    """Add `send`."""
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
