"""A test hook for fault injection: NEUROTRIAGE_FAULT=<point> kills the process at that named point.

The points mark each step of storing a diagnosis (`diagnosis.record` and `files.move_into_place`),
so tests and bench/bench_faults.py can check that a kill -9 at any of them leaves the database and
the report folders in agreement once `neurotriage check` has swept. Unset, a point costs one
environment lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "NEUROTRIAGE_FAULT"
# In the order a diagnosis reaches them; "mid-move" only when an earlier report is being replaced.
FAULT_POINTS = ("drafted", "stored", "committed", "mid-move", "moved", "settled")


def fault_point(name: str) -> None:
    """Die at once with SIGKILL, as a power cut or the OOM killer would, when NEUROTRIAGE_FAULT names `name`."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
