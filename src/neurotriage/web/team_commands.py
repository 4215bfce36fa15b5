"""`neurotriage care-team list | add | remove`: who, besides the admins, may see a patient."""

from __future__ import annotations

import argparse


def _list(args: argparse.Namespace) -> int:
    from neurotriage.clinical import intake
    from neurotriage.clinical.db import transaction
    from neurotriage.web.access import care_team

    with transaction() as session:
        intake.get_patient(session, args.patient_id)
        members = care_team(session, args.patient_id)
    for m in members:
        grant = "care team" if m["kind"] == "team" else f"break-glass until {m['until']}: {m['reason']}"
        print(f"{m['username']}\t{m['role']}\t{grant}\t(since {m['since']}, by {m['granted_by']})")
    team = sum(m["kind"] == "team" for m in members)
    print(f"patient {args.patient_id}: {team} in the care team, {len(members) - team} break-glass grants open")
    return 0


def _add(args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.web.access import add_to_team

    with transaction() as session:
        added = add_to_team(session, args.patient_id, args.username, None)
    verb = "added" if added else "already on"
    print(f"{args.username}: {verb} the care team of patient {args.patient_id}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from neurotriage.clinical.db import transaction
    from neurotriage.web.access import remove_from_team

    with transaction() as session:
        remove_from_team(session, args.patient_id, args.username, None)
    print(f"{args.username}: removed from the care team of patient {args.patient_id}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `care-team` subcommand."""
    team = sub.add_parser("care-team", help="list or change who may see a patient (admins see every patient)")
    actions = team.add_subparsers(dest="team_command", metavar="ACTION", required=True)
    show = actions.add_parser("list", help="the patient's care team and open break-glass grants")
    show.add_argument("patient_id", type=int, metavar="PATIENT_ID")
    show.set_defaults(handler=_list)
    for name, handler, text in (
        ("add", _add, "put a clinician or read-only user on the patient's care team"),
        ("remove", _remove, "take a user off the patient's care team"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("patient_id", type=int, metavar="PATIENT_ID")
        action.add_argument("username", metavar="USERNAME")
        action.set_defaults(handler=handler)
