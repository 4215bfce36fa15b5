"""`neurotriage backup` and `neurotriage restore`: the whole installation to one tar and back."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `backup` and `restore`."""
    p = sub.add_parser(
        "backup",
        help="write the database and every file under NEUROTRIAGE_HOME to one tar, while the server runs",
    )
    p.add_argument("out", type=Path, metavar="OUT.tar", help="the archive to write (replaced once complete)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(handler=_backup)
    p = sub.add_parser(
        "restore",
        help="rebuild an empty installation (database and NEUROTRIAGE_HOME) from a backup archive",
    )
    p.add_argument("archive", type=Path, metavar="IN.tar", help="an archive written by `neurotriage backup`")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(handler=_restore)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _backup(args: argparse.Namespace) -> int:
    from neurotriage.maintenance.backup import backup

    result = backup(args.out, progress=not args.json)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    notes = [f"left out {result.vanished} file(s) removed while it ran"] if result.vanished else []
    if result.outside_home:
        notes.append(f"{result.outside_home} report folder(s) outside NEUROTRIAGE_HOME not included")
    print(
        f"backed up the {result.database} database (schema revision {result.revision}) and {result.files} file(s),"
        f" {_megabytes(result.bytes)} in all, to {result.archive} in {result.seconds:.1f} s"
        + "".join(f"; {note}" for note in notes)
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from neurotriage.maintenance.restore import restore

    result = restore(args.archive, progress=not args.json)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    upgraded = f", upgraded from {result.from_revision}" if result.from_revision != result.to_revision else ""
    print(
        f"restored the {result.database} database (schema revision {result.to_revision}{upgraded}) and"
        f" {result.files} file(s), {_megabytes(result.bytes)} in all, in {result.seconds:.1f} s"
    )
    return 0
