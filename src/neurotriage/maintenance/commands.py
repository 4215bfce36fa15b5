"""`neurotriage check`: finish interrupted erasures, apply retention, sweep leftovers of killed runs and check
that reports and findings agree."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add `check`."""
    p = sub.add_parser(
        "check",
        help="finish interrupted erasures, remove what killed runs left behind, list what retention removes, "
        "then check that findings and report folders agree",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument(
        "--apply", action="store_true", help="remove what the retention rules (NEUROTRIAGE_RETAIN_*_DAYS) find"
    )
    p.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from neurotriage.maintenance.check import check
    from neurotriage.maintenance.progress import file_progress

    with file_progress("removing files past retention") as on_file:
        result = check(apply=args.apply, on_file=on_file)
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
    print_erasures(result)
    print_retention(result.retention)
    for problem in result.problems:
        print(problem.message)
    state = f"{len(result.problems)} problem(s)" if result.problems else "consistent"
    print(
        f"{state}: {result.findings} finding(s) with reports, {result.report_folders} report folder(s); "
        f"{len(swept.removed)} leftover(s) removed, {len(swept.moved)} moved into place"
    )


def print_erasures(result) -> None:
    """A line per pending erasure finished or discarded, and one when an erasure was running."""
    from neurotriage.maintenance.patient_files import human_bytes

    for done in result.erasures:
        if done.outcome == "discarded":
            print(f"discarded the journal of an erasure of {done.target} that never committed")
            continue
        log = "" if done.complete else "; the database was busy, so it still holds copies: run check again"
        print(f"finished the erasure of {done.target}: {done.files} files ({human_bytes(done.bytes)}) removed{log}")
    if result.erasure_running:
        print("an erasure is running: its pending journal is left to it")


def print_retention(report) -> None:
    """One line on what the retention rules remove (or removed), when any rule is set."""
    from collections import Counter

    from neurotriage.maintenance.patient_files import human_bytes

    periods = (("raw studies", report.raw_days), ("failed jobs", report.failed_job_days))
    rules = [f"{name} after {days} days" for name, days in periods if days is not None]
    if not rules:
        return
    head = f"retention ({'; '.join(rules)})"
    if not report.items:
        print(f"{head}: nothing to remove")
        return
    what = ", ".join(f"{rule}: {n}" for rule, n in Counter(item.rule for item in report.items).items())
    size = f"{report.files} files ({human_bytes(report.bytes)})"
    if report.applied:
        print(f"{head}: removed {what}; {size}")
    else:
        print(f"{head}: would remove {what}; {size}; --apply removes them")
