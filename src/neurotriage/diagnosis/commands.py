"""`neurotriage diagnose`: one study, or every pending study, from MRI to referral; `neurotriage worker`:
diagnose queued studies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add `diagnose` and `worker`."""
    p = sub.add_parser(
        "diagnose",
        help="segment, locate, cross-check against symptoms, refer and report one study (or all pending)",
    )
    p.add_argument(
        "case_dir",
        type=Path,
        nargs="?",
        help="BraTS case folder, or a raw study (DICOM folder or .zip, converter NIfTI) to ingest first",
    )
    p.add_argument("--patient", type=int, help="patient id (see `neurotriage patient list`)")
    p.add_argument("--all-pending", action="store_true", help="diagnose every study that has no finding yet")
    p.add_argument(
        "--enqueue", action="store_true", help="with --all-pending: only queue them for `neurotriage worker`"
    )
    p.add_argument(
        "--retry-parked",
        action="store_true",
        help="with --all-pending: also studies parked after failing too often, with fresh attempts",
    )
    p.add_argument("--out", type=Path, help="report folder (default: NEUROTRIAGE_HOME/reports/patient-ID/finding-KEY)")
    p.add_argument(
        "--send-to",
        metavar="AET@host:port",
        help="send the report's DICOM objects to this PACS (default: NEUROTRIAGE_DICOM_SEND_TO; see `send --status`)",
    )
    p.add_argument(
        "--from-pacs",
        metavar="AET@host:port",
        help="retrieve the study (--study UID) from this PACS by C-GET instead of reading CASE_DIR",
    )
    p.add_argument("--study", metavar="UID", help="with --from-pacs: the StudyInstanceUID to retrieve")
    _add_run_options(p)
    p.set_defaults(handler=_diagnose)
    _register_worker(sub)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        type=Path,
        action="append",
        help="checkpoint, monai-bundle:FOLDER or nnunet:FOLDER (default: the model shipped with the package); "
        "give it again to average several models' probabilities (an ensemble)",
    )
    p.add_argument("--limit", type=int, default=10, help="number of referrals (default 10)")
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.add_argument("--fhir", action="store_true", help="also write fhir_bundle.json (HL7 FHIR R4)")
    p.add_argument(
        "--accept-patient-mismatch",
        action="store_true",
        help="diagnose a raw study whose DICOM name or birth date differs from the patient's (recorded in provenance)",
    )


def _register_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="claim and diagnose queued studies (`diagnose --all-pending --enqueue`) until stopped",
        description="Claim and diagnose queued studies, one at a time, until SIGTERM or Ctrl-C (the current "
        "study finishes first; a second signal gives it back to the queue). Run any number of workers "
        "against one PostgreSQL database and one shared NEUROTRIAGE_HOME; each study is diagnosed once.",
    )
    p.add_argument("--until-empty", action="store_true", help="exit once no queued study is waiting or being diagnosed")
    p.add_argument(
        "--lease",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a claim runs out this long after its last renewal, which comes every third of it (default 60)",
    )
    p.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        metavar="N",
        help="park a study with its error after N failed attempts (default 3)",
    )
    p.add_argument(
        "--poll", type=float, default=2.0, metavar="SECONDS", help="how often an idle worker looks (default 2)"
    )
    _add_run_options(p)
    p.set_defaults(handler=_worker)


def _check_args(args: argparse.Namespace) -> None:
    from neurotriage.errors import UserError

    if args.all_pending:
        if args.case_dir or args.patient is not None or args.out:
            raise UserError("--all-pending: give no CASE_DIR, --patient or --out with it")
    elif args.enqueue or args.retry_parked:
        raise UserError(f"{'--enqueue' if args.enqueue else '--retry-parked'}: only with --all-pending")
    elif bool(args.from_pacs) != bool(args.study) or (args.from_pacs and args.case_dir):
        raise UserError("--from-pacs: give it with --study UID and without CASE_DIR")
    elif (args.case_dir is None and not args.from_pacs) or args.patient is None:
        raise UserError("diagnose: give CASE_DIR (or --from-pacs and --study) and --patient ID, or --all-pending")
    _check_limit(args)


def _check_limit(args: argparse.Namespace) -> None:
    from neurotriage.errors import UserError

    if args.limit < 1:
        raise UserError(f"--limit: must be at least 1, got {args.limit}")


def _diagnose(args: argparse.Namespace) -> int:
    from neurotriage.diagnosis.batch import diagnose_pending
    from neurotriage.diagnosis.pipeline import DiagnoseOptions, diagnose
    from neurotriage.diagnosis.stages import StageTimer
    from neurotriage.maintenance.sweep import sweep

    _check_args(args)
    destination = _send_destination(args)
    sweep(folders=[args.out.parent] if args.out else [])  # leftovers of killed runs hold patient data
    options = DiagnoseOptions(
        model=args.model,
        out_dir=args.out,
        fhir=args.fhir,
        limit=args.limit,
        accept_patient_mismatch=args.accept_patient_mismatch,
    )
    timer = StageTimer(quiet=args.json)
    if args.enqueue:
        from neurotriage.diagnosis.queue import enqueue_pending, queue_counts

        result = {"queued": enqueue_pending(parked=args.retry_parked)} | queue_counts()
        _emit(result, args.json, print_enqueued)
        return 0
    if args.all_pending:
        result = diagnose_pending(options, quiet=args.json, retry_parked=args.retry_parked)
        _emit(result, args.json, print_pending)
        return 1 if result["failed"] else 0
    result = diagnose(_study_folder(args, timer), args.patient, options, timer)
    _emit(result, args.json, print_result)
    if destination is None:
        return 0
    from neurotriage.pacs.commands import send_report

    return send_report(Path(result["report_dir"]), destination, sys.stderr if args.json else None)


def _study_folder(args: argparse.Namespace, timer) -> Path:
    """CASE_DIR, or the study --from-pacs retrieves (a stage of its own)."""
    if not args.from_pacs:
        return args.case_dir
    from neurotriage.pacs.pull import pull_study
    from neurotriage.pacs.send import parse_destination

    source = parse_destination(args.from_pacs, field="from_pacs")
    with timer.stage("retrieve from PACS"):
        return pull_study(source, args.study)


def _send_destination(args: argparse.Namespace):
    """The PACS a single study's results go to (--send-to, else the configured one), checked before any work."""
    from neurotriage.errors import UserError
    from neurotriage.pacs.send import resolve_destination

    if not args.all_pending:
        return resolve_destination(args.send_to)
    if args.send_to:
        raise UserError("--send-to: only for one study, not with --all-pending")
    return None


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

    from neurotriage.diagnosis.batch import describe

    console = Console(soft_wrap=True)
    for row in result["studies"]:
        console.print(f"  {describe(row)}")
    console.print(f"{result['done']} diagnosed, {result['failed']} failed ({result['parked']} of them parked).")
    if result["lost"]:
        console.print(f"{result['lost']} taken over by another worker after this run's claim ran out.")
    if result["queue"]["parked"]:
        parked = result["queue"]["parked"]
        console.print(f"{parked} studies are parked after failing too often (--retry-parked tries them again).")


def print_enqueued(result: dict) -> None:
    """How many studies joined the queue, and the queue's state."""
    print(
        f"{result['queued']} studies queued; {result['waiting']} waiting, {result['claimed']} being diagnosed, "
        f"{result['parked']} parked. Run `neurotriage worker` to diagnose them."
    )


def _worker(args: argparse.Namespace) -> int:
    from neurotriage.diagnosis.pipeline import DiagnoseOptions
    from neurotriage.diagnosis.queue import QueueSettings
    from neurotriage.diagnosis.worker import run_worker
    from neurotriage.errors import UserError
    from neurotriage.maintenance.sweep import sweep

    _check_limit(args)
    for flag, value in (("--lease", args.lease), ("--poll", args.poll)):
        if not value > 0:
            raise UserError(f"{flag}: must be a positive number of seconds, got {value:g}")
    if args.max_attempts < 1:
        raise UserError(f"--max-attempts: must be at least 1, got {args.max_attempts}")
    sweep()  # leftovers of killed runs hold patient data
    options = DiagnoseOptions(model=args.model, fhir=args.fhir, limit=args.limit)
    settings = QueueSettings(lease_s=args.lease, max_attempts=args.max_attempts)
    result = run_worker(options, settings, until_empty=args.until_empty, poll_s=args.poll, quiet=args.json)
    _emit(result, args.json, print_worker_summary)
    return 1 if result["failed"] else 0


def print_worker_summary(result: dict) -> None:
    """The totals of a worker run."""
    print(
        f"worker {result['worker']}: {result['done']} diagnosed, {result['failed']} failed attempts "
        f"({result['parked']} studies parked), {result['lost']} taken over by another worker."
    )
