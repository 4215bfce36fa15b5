"""`diagnose`: one study from MRI to referral, stored and reported.

The flow is `analyse` (no database) -> `decide` (one read transaction) -> `draft` (the report
rendered aside, no transaction open) -> `record` (one write transaction that stores the finding,
cross-check and referral and moves the report into place, then commits). Everything that can fail
on the user's input (case folder, patient, model) is checked before any work is stored, and a
failure at any step leaves neither rows nor a report (an earlier report it replaced is put back).

Pending studies are diagnosed through the queue (diagnosis/queue.py), in this process
(`diagnose_pending`) or by workers (diagnosis/worker.py): each study is claimed, and its finding is
stored only while the claim holds, so concurrent runs never diagnose a study twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from neurotriage.clinical.db import transaction
from neurotriage.clinical.decisions import decide
from neurotriage.clinical.snapshot import PatientSnapshot, load_patient
from neurotriage.config import load_settings
from neurotriage.diagnosis.analysis import Analysis, analyse
from neurotriage.diagnosis.cases import case_folder
from neurotriage.diagnosis.queue import (
    Claim,
    ClaimLost,
    QueueSettings,
    claim,
    enqueue_pending,
    keep_alive,
    queue_counts,
    record_failure,
    release,
    worker_name,
)
from neurotriage.diagnosis.record import Draft, draft, new_finding_key, record
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.errors import UserError
from neurotriage.imaging.io import find_case
from neurotriage.report.folder import check_target

WriteLock = Callable[[], AbstractContextManager[Any]]
Fence = Callable[[Session], None]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiagnoseOptions:
    """What a diagnosis run may vary: model, report location, FHIR, referral count, database."""

    model: Path | None = None
    out_dir: Path | None = None
    fhir: bool = False
    limit: int = 10
    url: str | None = None


def default_report_dir(patient_id: int, finding_key: str) -> Path:
    """Reports live beside the database: NEUROTRIAGE_HOME/reports/patient-<id>/finding-<key>."""
    return load_settings().home / "reports" / f"patient-{patient_id}" / f"finding-{finding_key}"


def _check_patient(patient_id: int, url: str | None) -> PatientSnapshot:
    with transaction(url) as session:
        return load_patient(session, patient_id)


def _draft(patient: PatientSnapshot, analysis: Analysis, options: DiagnoseOptions, timer: StageTimer) -> Draft:
    key = new_finding_key()
    out_dir = Path(options.out_dir).resolve() if options.out_dir else default_report_dir(patient.id, key)
    with timer.stage("cross-check + referral"), transaction(options.url) as session:
        decision = decide(session, patient, analysis.location, options.limit)
    return draft(analysis, decision, out_dir, key=key, fhir=options.fhir, timer=timer)


def store(
    drafted: Draft,
    url: str | None,
    case_ref: str | None = None,
    write_lock: WriteLock = nullcontext,
    fence: Fence | None = None,
) -> dict:
    """`record` a draft in one write transaction held under `write_lock` and commit it; `fence` runs first
    in that transaction and may refuse it by raising. On any failure the report is removed again (an
    earlier report it replaced is put back)."""
    try:
        with write_lock(), transaction(url) as session:
            if fence is not None:
                fence(session)
            stored = record(session, drafted, case_ref)
    except BaseException:
        drafted.discard()
        raise
    drafted.settle()
    return stored


def diagnose(
    case_dir: Path | str,
    patient_id: int,
    options: DiagnoseOptions | None = None,
    timer: StageTimer | None = None,
    case_ref: str | None = None,
    write_lock: WriteLock = nullcontext,
    fence: Fence | None = None,
) -> dict[str, Any]:
    """Segment, locate, cross-check, refer and report one study for one patient; returns the summary.

    `case_ref` names the study in the database (default: the case folder's absolute path);
    `write_lock` is held around the storing transaction only."""
    options = options or DiagnoseOptions()
    timer = timer or StageTimer()
    with timer.stage("check inputs"):
        files = find_case(case_dir)
        patient = _check_patient(patient_id, options.url)
        if options.out_dir:
            check_target(Path(options.out_dir))
    analysis = analyse(files, options.model, timer)
    drafted = _draft(patient, analysis, options, timer)
    with timer.stage("store"):
        stored = store(drafted, options.url, case_ref, write_lock, fence)
    return {
        "patient_id": patient_id,
        "case_id": analysis.case_id,
        "report_dir": str(drafted.out_dir),
        "locate": analysis.location.model_dump(mode="json"),
        "provenance": analysis.provenance.model_dump(mode="json"),
        "timings_s": timer.timings,
        **stored,
    }


class Progress:
    """What a queue run shows as it goes; this one shows nothing."""

    def started(self, claimed: Claim, index: int) -> StageTimer:
        """A claimed study starts (the `index`th of this run); returns the timer for its stages."""
        return StageTimer(quiet=True)

    def finished(self, row: dict[str, Any]) -> None:
        """A study's outcome, as `diagnose_claimed` returns it."""


class BatchProgress(Progress):
    """A heading per study and its stage lines, on stderr."""

    def __init__(self, quiet: bool = False) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet

    def started(self, claimed: Claim, index: int) -> StageTimer:
        """Print the study's heading with its place in the run (and attempt when a retry)."""
        if not self.quiet:
            retry = f", attempt {claimed.attempt}" if claimed.attempt > 1 else ""
            heading = f"[bold]study {claimed.study_id}[/bold] ({index}/{index + claimed.waiting}{retry})"
            self.console.print(f"{heading}: {escape(claimed.case_ref)}")
        return StageTimer(self.console, self.quiet)


def _describe(exc: Exception) -> str:
    """An unexpected error as one line to keep on the study; a database error without its SQL parameters."""
    if isinstance(exc, DBAPIError):
        text = str(exc.orig).strip() if exc.orig is not None else ""
        return f"database error: {text.splitlines()[0] if text else type(exc).__name__}"
    return f"internal error: {type(exc).__name__}: {exc}"


def _row(claimed: Claim, status: str, start: float, **fields: Any) -> dict[str, Any]:
    return {
        "study_id": claimed.study_id,
        "patient_id": claimed.patient_id,
        "case_ref": claimed.case_ref,
        "attempt": claimed.attempt,
        "status": status,
        "ok": status == "ok",
        "seconds": round(time.perf_counter() - start, 1),
        **fields,
    }


def diagnose_claimed(
    claimed: Claim, options: DiagnoseOptions, settings: QueueSettings, timer: StageTimer | None = None
) -> dict[str, Any]:
    """Diagnose a claimed study while renewing its lease. A failure is kept on the study, which is queued
    again or parked; an interruption gives the claim back. Returns the study's row, with a status of
    ok, failed, parked or lost (the claim was taken over, so the result was discarded)."""
    start = time.perf_counter()
    try:
        with keep_alive(claimed, settings):
            folder = case_folder(claimed.case_ref, claimed.synthetic_seed)
            result = diagnose(folder, claimed.patient_id, options, timer, claimed.case_ref, fence=claimed.fence)
    except ClaimLost as exc:
        return _row(claimed, "lost", start, error=str(exc))
    except UserError as exc:
        error = str(exc)
    except Exception as exc:  # one bad case must not stop the batch: its error is kept on the study
        error = _describe(exc)
        log.error("study %s: %s", claimed.study_id, error, exc_info=not isinstance(exc, DBAPIError))
    except BaseException:  # interrupted: the study keeps its place for the next claim
        release(claimed)
        raise
    else:
        return _row(claimed, "ok", start, finding_id=result["finding_id"], report_dir=result["report_dir"])
    try:
        parked = record_failure(claimed, error, settings)
    except ClaimLost as exc:
        return _row(claimed, "lost", start, error=str(exc))
    return _row(claimed, "parked" if parked else "failed", start, error=error)


def drain(
    options: DiagnoseOptions,
    settings: QueueSettings,
    progress: Progress,
    *,
    retry: bool,
    until: str = "none claimable",
    stop: threading.Event | None = None,
    poll_s: float = 2.0,
) -> list[dict[str, Any]]:
    """Claim and diagnose queued studies until `until`: "none claimable"; "empty", when no study is
    waiting or being diagnosed by another worker either (its lease may run out); "stopped", when `stop`
    is set. An idle loop looks again every `poll_s` seconds. Without `retry` each study is tried at most
    once here."""
    stop = stop or threading.Event()
    worker, tried, rows = worker_name(), set(), []
    while not stop.is_set():
        claimed = claim(settings, worker, options.url, exclude=() if retry else tried)
        if claimed is None:
            if until == "none claimable" or (until == "empty" and not queue_counts(options.url)["claimed"]):
                break
            stop.wait(poll_s)
            continue
        tried.add(claimed.study_id)
        rows.append(diagnose_claimed(claimed, options, settings, progress.started(claimed, len(rows) + 1)))
        progress.finished(rows[-1])
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A queue run's rows with counts: diagnosed, failed (parked ones included), parked, lost."""
    count = {status: sum(r["status"] == status for r in rows) for status in ("ok", "failed", "parked", "lost")}
    return {
        "studies": rows,
        "done": count["ok"],
        "failed": count["failed"] + count["parked"],
        "parked": count["parked"],
        "lost": count["lost"],
    }


def describe(row: dict[str, Any]) -> str:
    """One study's outcome as a line (rich markup): the study, its attempt, and what came of it."""
    error = escape(str(row.get("error")))
    outcome = {
        "ok": f"[green]ok[/green], finding {row.get('finding_id')}",
        "failed": f"[red]failed[/red], queued again: {error}",
        "parked": f"[red]failed, parked[/red] after {row['attempt']} attempts: {error}",
        "lost": f"[yellow]taken over[/yellow]: {error}",
    }[row["status"]]
    retry = f", attempt {row['attempt']}" if row["attempt"] > 1 else ""
    return f"study {row['study_id']} ({escape(row['case_ref'])}, patient {row['patient_id']}{retry}): {outcome}"


def diagnose_pending(
    options: DiagnoseOptions, quiet: bool = False, settings: QueueSettings | None = None
) -> dict[str, Any]:
    """Diagnose every study without a finding in this process, through the queue: pending studies are
    queued, then each is claimed (concurrent runs and workers share them out) and tried once here.
    A failure is recorded on its study and the rest go on; parked studies are not tried."""
    enqueue_pending(options.url)
    rows = drain(options, settings or QueueSettings(), BatchProgress(quiet), retry=False)
    return summarise(rows) | {"queue": queue_counts(options.url)}
