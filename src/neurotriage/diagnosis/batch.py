"""Diagnosing queued studies: one claimed study (`diagnose_claimed`), a loop that claims until the
queue is done (`drain`, which workers run too), and the in-process batch (`diagnose_pending`).

Each study is claimed (diagnosis/queue.py) and its finding stored only while the claim holds, so
concurrent batch runs and workers never diagnose a study twice. One bad case never stops a run: its
error is kept on the study, which is queued again, or parked once it has used its attempts.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import nullcontext
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import DBAPIError

from neurotriage.diagnosis.cases import case_folder
from neurotriage.diagnosis.pipeline import DiagnoseOptions, WriteLock, diagnose
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
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.errors import UserError

log = logging.getLogger(__name__)

Until = Literal["none claimable", "empty", "stopped"]


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
    claimed: Claim,
    options: DiagnoseOptions,
    settings: QueueSettings,
    timer: StageTimer | None = None,
    write_lock: WriteLock = nullcontext,
) -> dict[str, Any]:
    """Diagnose a claimed study while renewing its lease, holding `write_lock` around the storing
    transaction. A failure is kept on the study, which is queued again or parked; an interruption gives
    the claim back. Returns the study's row, with a status of ok, failed, parked or lost (the claim was
    taken over, so the result was discarded)."""
    start = time.perf_counter()
    try:
        with keep_alive(claimed, settings):
            folder = case_folder(claimed.case_ref, claimed.synthetic_seed)
            result = diagnose(
                folder, claimed.patient_id, options, timer, claimed.case_ref, write_lock=write_lock, fence=claimed.fence
            )
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
    until: Until = "none claimable",
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
    options: DiagnoseOptions, quiet: bool = False, settings: QueueSettings | None = None, retry_parked: bool = False
) -> dict[str, Any]:
    """Diagnose every study without a finding in this process, through the queue: pending studies are
    queued, then each is claimed (concurrent runs and workers share them out) and tried once here.
    A failure is recorded on its study and the rest go on; parked studies are tried only with
    `retry_parked`."""
    enqueue_pending(options.url, parked=retry_parked)
    rows = drain(options, settings or QueueSettings(), BatchProgress(quiet), retry=False)
    return summarise(rows) | {"queue": queue_counts(options.url)}
