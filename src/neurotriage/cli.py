"""The `neurotriage` command: argument handling only, the work lives in the library.

Each area of the package registers its own subcommands through a `register(subparsers)`
function in its `commands` module (and `demo`). Every one of them is imported for `--help`, so
their handlers import what they use (torch, MONAI, SQLAlchemy, the pipeline) inside themselves:
`--help` stays fast and each subcommand loads only its own code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from neurotriage import NOTICE, __version__
from neurotriage.errors import UserError

# Each area's command module and the subcommands it registers. A run builds only the parser of the
# subcommand it names (building all of them costs about 0.3 s); `--help` and unknown names build all.
# tests/test_cli.py checks this table against what the modules register.
COMMANDS = {
    "neurotriage.imaging.commands": ("info", "synth"),
    "neurotriage.segmentation.commands": ("prepare", "train", "segment", "evaluate", "metrics", "train-default"),
    "neurotriage.ingest.commands": ("ingest",),
    "neurotriage.pacs.commands": ("listen", "send"),
    "neurotriage.anatomy.commands": ("locate",),
    "neurotriage.clinical.commands": ("db", "patient", "symptom", "finding", "crosscheck", "refer"),
    "neurotriage.diagnosis.commands": ("diagnose", "worker"),
    "neurotriage.web.commands": ("serve", "user"),
    "neurotriage.web.team_commands": ("care-team",),
    "neurotriage.maintenance.backup_commands": ("backup", "restore"),
    "neurotriage.demo": ("demo",),
    "neurotriage.maintenance.commands": ("check",),
    "neurotriage.export.commands": ("export",),
    "neurotriage.maintenance.erase_commands": ("study",),
}
# Library fields carried by a flag whose dest has another name (`--patient` holds `patient_id`).
FIELD_DESTS = {"patient_id": "patient", "case_ref": "case"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with the subcommands of the module that owns `command` (all when
    `command` is None or unknown)."""
    parser = argparse.ArgumentParser(prog="neurotriage", description=f"Brain-tumour MRI triage. {NOTICE}")
    parser.add_argument("--version", action="version", version=f"neurotriage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    owners = [module for module, names in COMMANDS.items() if command in names] or list(COMMANDS)
    for name in owners:
        importlib.import_module(name).register(sub)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand an argument list names: its first argument, unless that is an option."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the subcommand that ran, following nested subcommands down."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None))
            if chosen is not None:
                return _chosen_parser(chosen, args)
    return parser


def _flag_for(parser: argparse.ArgumentParser, args: argparse.Namespace, field: str | None) -> str | None:
    """The running subcommand's flag that carries a library field, None when it has none."""
    dests = {field, FIELD_DESTS.get(field)} - {None}
    for action in _chosen_parser(parser, args)._actions:
        if action.dest in dests and action.option_strings:
            return max(action.option_strings, key=len)
    return None


def error_line(parser: argparse.ArgumentParser, args: argparse.Namespace, exc: UserError) -> str:
    """A user error as the CLI prints it, led by the flag that carries its field."""
    flag = _flag_for(parser, args, exc.field)
    return f"neurotriage: error: {flag}: {exc.message}" if flag else f"neurotriage: error: {exc.message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print one line on stderr and return exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except UserError as exc:
        print(error_line(parser, args, exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurotriage: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `neurotriage patient list | head`: the reader left; silence the flush at exit too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 141
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
