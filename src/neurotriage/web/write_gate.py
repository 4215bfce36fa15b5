"""One writer at a time inside the web process when the database is SQLite.

SQLite has a single writer, and in WAL mode a transaction that has read cannot start writing once
another connection has committed since (SQLITE_BUSY_SNAPSHOT, which no busy timeout retries).
The web app reads then writes in most requests (a page view adds an audit row) and a diagnosis
reads, computes, then stores, so concurrent commits would make either fail. The gate serialises
the app's writing transactions. A diagnosis reads and renders its report outside the gate, then
holds it only around the one transaction that stores it. PostgreSQL needs none of this: there
the gate lets everyone in.
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
