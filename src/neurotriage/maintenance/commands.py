"""`neurotriage check`: sweep leftovers of killed runs and check that reports and findings agree."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `check`."""
    p = sub.add_parser(
        "check",
        help="remove what killed runs left behind, then check that findings and report folders agree",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from neurotriage.maintenance.check import check

    result = check()
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_check(result)
    return 0 if result.ok else 1


def print_check(result) -> None:
    """One line per leftover handled and per problem, then a summary line."""
    swept = result.sweep
    for path in swept.removed:
        print(f"removed leftover {path}")
    for moved in swept.moved:
        print(f"moved leftover {moved.path} into place as {moved.target}")
    for path in swept.in_use:
        print(f"left {path}: a running process (or another host) may be using it")
    for problem in result.problems:
        print(problem.message)
    state = f"{len(result.problems)} problem(s)" if result.problems else "consistent"
    print(
        f"{state}: {result.findings} finding(s) with reports, {result.report_folders} report folder(s); "
        f"{len(swept.removed)} leftover(s) removed, {len(swept.moved)} moved into place"
    )
