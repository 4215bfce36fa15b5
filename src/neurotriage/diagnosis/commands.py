"""`neurotriage diagnose`: one study, or every pending study, from MRI to referral."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `diagnose`."""
    p = sub.add_parser(
        "diagnose",
        help="segment, locate, cross-check against symptoms, refer and report one study (or all pending)",
    )
    p.add_argument("case_dir", type=Path, nargs="?", help="BraTS case folder")
    p.add_argument("--patient", type=int, help="patient id (see `neurotriage patient list`)")
    p.add_argument("--all-pending", action="store_true", help="diagnose every study that has no finding yet")
    p.add_argument("--model", type=Path, help="checkpoint (default: the model shipped with the package)")
    p.add_argument("--out", type=Path, help="report folder (default: NEUROTRIAGE_HOME/reports/patient-ID/finding-KEY)")
    p.add_argument("--limit", type=int, default=10, help="number of referrals (default 10)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument("--fhir", action="store_true", help="also write fhir_bundle.json (HL7 FHIR R4)")
    p.set_defaults(handler=_diagnose)


def _check_args(args: argparse.Namespace) -> None:
    from neurotriage.errors import UserError

    if args.all_pending:
        if args.case_dir or args.patient is not None or args.out:
            raise UserError("--all-pending: give no CASE_DIR, --patient or --out with it")
    elif args.case_dir is None or args.patient is None:
        raise UserError("diagnose: give CASE_DIR and --patient ID, or --all-pending")
    if args.limit < 1:
        raise UserError(f"--limit: must be at least 1, got {args.limit}")


def _diagnose(args: argparse.Namespace) -> int:
    from neurotriage.diagnosis.pipeline import DiagnoseOptions, diagnose, diagnose_pending
    from neurotriage.diagnosis.stages import StageTimer
    from neurotriage.maintenance.sweep import sweep

    _check_args(args)
    sweep(folders=[args.out.parent] if args.out else [])  # leftovers of killed runs hold patient data
    options = DiagnoseOptions(model=args.model, out_dir=args.out, fhir=args.fhir, limit=args.limit)
    timer = StageTimer(quiet=args.json)
    if args.all_pending:
        result = diagnose_pending(options, quiet=args.json)
        _emit(result, args.json, print_pending)
        return 1 if result["failed"] else 0
    result = diagnose(args.case_dir, args.patient, options, timer)
    _emit(result, args.json, print_result)
    return 0


def _emit(result: dict, as_json: bool, printer) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        printer(result)


def print_result(result: dict, top: int = 3) -> None:
    """The clinician's summary: location, verdict, top referrals, where the report is."""
    from rich.console import Console

    from neurotriage import NOTICE

    console = Console()
    check = result["crosscheck"]
    flag = "[bold red]REVIEW[/bold red] " if check.get("needs_review") else ""
    console.print(f"[bold]{result['case_id']}[/bold]: {result['locate']['summary']}")
    console.print(f"Cross-check: {flag}{check['verdict']} - {check.get('summary', '')}")
    for rec in result["referral"]["recommendations"][:top]:
        doctor, hospital = rec["doctor"], rec["hospital"]
        console.print(
            f"  {rec['rank']}. {doctor['name']} ({doctor['specialty']}), {hospital['name']}, "
            f"{hospital['city']} - score {rec['score']:.2f}"
        )
    console.print(f"Report: {Path(result['report_dir']) / 'report.html'}")
    console.print(f"[dim]{NOTICE}[/dim]")


def print_pending(result: dict) -> None:
    """One line per study of a batch run and a totals line."""
    from rich.console import Console

    console = Console()
    for row in result["studies"]:
        status = "[green]ok[/green]" if row["ok"] else f"[red]failed[/red]: {row['error']}"
        console.print(f"  study {row['study_id']} ({row['case_ref']}, patient {row['patient_id']}): {status}")
    console.print(f"{result['done']} diagnosed, {result['failed']} failed.")
