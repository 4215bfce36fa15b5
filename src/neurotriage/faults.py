"""Test hooks for fault injection at named points: NEUROTRIAGE_FAULT=<point> kills the process there,
NEUROTRIAGE_PAUSE=<point>:<path> holds it there until a file appears.

The write points mark each step of storing a diagnosis (`diagnosis.record` and `files.move_into_place`),
so tests and bench/bench_faults.py can check that a kill -9 at any of them leaves the database and
the report folders in agreement once `neurotriage check` has swept. The pause points let them
change the world (stop or restart the database server) at a known moment of a run: "analysing"
once the patient has been read and before the analysis, "storing" in the storing transaction
before any row is written. Unset, a point costs two environment lookups.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

FAULT_ENV = "NEUROTRIAGE_FAULT"
PAUSE_ENV = "NEUROTRIAGE_PAUSE"
# In the order a diagnosis reaches them; "mid-move" only when an earlier report is being replaced.
FAULT_POINTS = ("drafted", "stored", "committed", "mid-move", "moved", "settled")
PAUSE_POLL_S = 0.02


def fault_point(name: str) -> None:
    """Die at once with SIGKILL, as a power cut or the OOM killer would, when NEUROTRIAGE_FAULT names `name`;
    pause when NEUROTRIAGE_PAUSE names it."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, release = os.environ.get(PAUSE_ENV, "").partition(":")
    if point == name and release:
        _pause(Path(release))


def paused_marker(release: Path) -> Path:
    """The file a process creates once it pauses for `release` to appear."""
    return release.with_name(release.name + ".paused")


def _pause(release: Path) -> None:
    """Say so with `paused_marker(release)`, then wait until `release` exists."""
    paused_marker(release).touch()
    while not release.exists():
        time.sleep(PAUSE_POLL_S)
