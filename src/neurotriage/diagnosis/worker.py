"""A queue worker: claims and diagnoses queued studies until stopped (or until none is left).

Any number of workers may run against one PostgreSQL database and one shared study store; on SQLite
they share the queue only on one machine. SIGTERM or SIGINT lets the current study finish and then
stops the worker; a second one interrupts the study, whose claim is given back for another worker.
"""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from sqlalchemy.engine import make_url

from neurotriage.clinical.db import database_url
from neurotriage.diagnosis.batch import Progress, describe, drain, summarise
from neurotriage.diagnosis.pipeline import DiagnoseOptions
from neurotriage.diagnosis.queue import QueueSettings, worker_name
from neurotriage.signals import stop_on_signals

SCALE_OUT_NOTE = (
    "SQLite: workers share this queue on this machine only; workers on several machines need "
    "PostgreSQL (NEUROTRIAGE_DATABASE_URL)."
)


class WorkerProgress(Progress):
    """One line per study as it ends."""

    def __init__(self, console: Console, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet

    def finished(self, row: dict[str, Any]) -> None:
        """Print the study, its outcome and how long it took."""
        if not self.quiet:
            self.console.print(f"{describe(row)} ({row['seconds']:.1f} s)")


def run_worker(
    options: DiagnoseOptions,
    settings: QueueSettings,
    *,
    until_empty: bool = False,
    poll_s: float = 2.0,
    quiet: bool = False,
) -> dict[str, Any]:
    """Claim and diagnose queued studies until stopped by a signal, or with `until_empty` until no study
    is waiting or being diagnosed elsewhere; an idle worker looks again every `poll_s` seconds. Returns
    the rows and counts."""
    notes = Console(stderr=True, soft_wrap=True)
    if make_url(database_url(options.url)).get_backend_name() == "sqlite":
        notes.print(SCALE_OUT_NOTE)
    stop = threading.Event()
    with stop_on_signals(stop, notes.print, after=" after the current study (send it again to stop now)"):
        rows = drain(
            options,
            settings,
            WorkerProgress(Console(soft_wrap=True), quiet),  # a line per study, unwrapped for logs
            retry=True,
            until="empty" if until_empty else "stopped",
            stop=stop,
            poll_s=poll_s,
        )
    return summarise(rows) | {"worker": worker_name()}
