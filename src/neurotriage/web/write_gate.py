"""One writer at a time inside the web process when the database is SQLite.

SQLite has a single writer. Every transaction begins IMMEDIATE (clinical/db.py), so writers from
other processes queue behind the busy timeout instead of failing; inside the web process the gate
keeps the app's own transactions in order, so none of them spends its busy timeout waiting on a
sibling thread. A diagnosis reads and renders its report outside the gate, then holds it only
around the one transaction that stores it. PostgreSQL needs none of this: there the gate lets
everyone in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url


class WriteGate:
    """A re-entrant process-wide lock for SQLite databases, a no-op for others."""

    def __init__(self, url: str) -> None:
        self._lock = threading.RLock() if make_url(url).get_backend_name() == "sqlite" else None

    def acquire(self) -> None:
        """Wait for the gate."""
        if self._lock is not None:
            self._lock.acquire()

    def release(self) -> None:
        """Open the gate again (by the thread that holds it)."""
        if self._lock is not None:
            self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate for a block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()
