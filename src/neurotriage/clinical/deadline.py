"""A client-side deadline on every PostgreSQL round trip: a frozen server becomes an error, not a hang.

Neither TCP keepalives nor the server's statement_timeout end a wait on a server process that is
stopped (SIGSTOP, a hung VM) while its kernel still acknowledges packets: measured on loopback,
a COMMIT waited until the client gave up, keepalives and tcp_user_timeout at 1-2 s notwithstanding.
So one watchdog thread shuts down the socket of any connection whose call has waited past its
deadline; libpq then sees the connection closed and the call fails at once.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg


class ServerSilent(psycopg.OperationalError):
    """The server sent no answer before the client-side deadline; the connection is closed."""


@dataclass(eq=False)
class _Call:
    """One wait on the server: the connection's socket and when to give up on it."""

    fd: int
    deadline: float
    fired: bool = False


def _shut_down(fd: int) -> None:
    """Shut the socket down both ways: a thread blocked on it wakes up to end-of-file."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing left to wake


class _Watchdog:
    """One daemon thread that shuts down the sockets of calls past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._calls: set[_Call] = set()
        self._thread: threading.Thread | None = None
        self._wake_at = math.inf  # when the thread next looks at the calls

    @contextmanager
    def watch(self, fd: int, seconds: float) -> Iterator[_Call]:
        """Guard one call on socket `fd`; the yielded call says whether the watchdog fired."""
        call = _Call(fd, time.monotonic() + seconds)
        with self._cond:
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="db-deadline", daemon=True)
                self._thread.start()
            if call.deadline < self._wake_at:  # rare: the thread mostly sleeps until an earlier deadline
                self._wake_at = call.deadline
                self._cond.notify()
            self._calls.add(call)
        try:
            yield call
        finally:
            # The socket stays open until the call is removed here, so the watchdog never shuts
            # down a socket number that another connection has reused.
            with self._cond:
                self._calls.discard(call)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                for call in self._calls:
                    if not call.fired and call.deadline <= now:
                        call.fired = True
                        _shut_down(call.fd)
                self._wake_at = min((call.deadline for call in self._calls if not call.fired), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


_WATCHDOG = _Watchdog()


class DeadlineConnection(psycopg.Connection):
    """A psycopg connection whose every wait on the server ends after `deadline_s` seconds."""

    deadline_s: float = 60.0

    def wait(self, gen: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one round trip (execute, commit, rollback, a pool ping: all pass here) under the deadline."""
        with _WATCHDOG.watch(self.pgconn.socket, self.deadline_s) as call:
            try:
                return super().wait(gen, *args, **kwargs)
            except psycopg.OperationalError as exc:
                if call.fired:
                    raise ServerSilent(f"no answer from the server within {self.deadline_s:g} s") from exc
                raise
