"""`neurotriage patient erase` and `neurotriage study erase`: confirm, erase, say what went."""

from __future__ import annotations

import argparse
import getpass
import sys


def add_patient_erase(actions: argparse._SubParsersAction) -> None:
    """Add `erase` to the `patient` actions."""
    erase = actions.add_parser(
        "erase", help="erase a patient and everything derived from them: rows, reports, cases, uploads, DICOM"
    )
    erase.add_argument("patient", type=int, metavar="PATIENT")
    erase.add_argument("--yes", action="store_true", help="erase without asking (needed outside a terminal)")
    erase.set_defaults(handler=lambda args: _erase("patient", args.patient, args.yes))


def register(sub: argparse._SubParsersAction) -> None:
    """Add `study` (its one action: `erase`)."""
    study = sub.add_parser("study", help="erase one study")
    actions = study.add_subparsers(dest="command_name", metavar="ACTION", required=True)
    erase = actions.add_parser("erase", help="erase a study and what was derived from it; the patient stays")
    erase.add_argument("study", type=int, metavar="STUDY")
    erase.add_argument("--yes", action="store_true", help="erase without asking (needed outside a terminal)")
    erase.set_defaults(handler=lambda args: _erase("study", args.study, args.yes))


def _erase(kind: str, record_id: int, yes: bool) -> int:
    from neurotriage.errors import UserError
    from neurotriage.maintenance.erase import Actor, erase, plan_erasure
    from neurotriage.maintenance.progress import file_progress

    plan = plan_erasure(kind, record_id)
    if not yes:
        if not sys.stdin.isatty():
            raise UserError(f"{kind} {record_id}: erasing asks for confirmation in a terminal; pass --yes to erase")
        print(_describe(plan))
        if input("This cannot be undone. Type yes to erase: ").strip().lower() != "yes":
            print("nothing erased")
            return 1
    with file_progress("removing files", plan.files) as on_file:
        result = erase(kind, record_id, Actor(f"cli:{_login()}"), on_file=on_file)
    print(_summary(result))
    return 0


def _describe(plan) -> str:
    """What the erasure removes, for the person confirming it (their name shows here, and nowhere after)."""
    from neurotriage.maintenance.erase import counted
    from neurotriage.maintenance.patient_files import human_bytes

    what = plan.target.replace(":", " ")
    whose = f"patient {plan.patient_id}, {plan.patient_name}" if plan.target.startswith("study") else plan.patient_name
    lines = [
        f"Erase {what} ({whose}): {counted(plan)}; {plan.files} files ({human_bytes(plan.bytes)}) in:",
        *(f"  {path}" for path in plan.paths),
    ]
    return "\n".join(lines) if plan.paths else lines[0].removesuffix(" in:")


def _summary(result) -> str:
    from neurotriage.maintenance.erase import counted
    from neurotriage.maintenance.patient_files import human_bytes

    removed = f"{result.files} files ({human_bytes(result.bytes)}) removed"
    line = f"erased {result.target.replace(':', ' ')}: {counted(result)}; {removed}"
    if not result.complete:
        line += "; the database was busy, so it still holds copies of the rows until `neurotriage check` runs"
    return line


def _login() -> str:
    """The person at the command line, as the audit log names them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in the environment or the password database
        return "unknown"
