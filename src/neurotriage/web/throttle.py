"""Login throttling with exponential back-off, per account and per client address.

Each key (an account, a client address) may fail a few times freely within a window; after that,
every further attempt must wait twice as long as the one before, counted from the last failure,
and is refused without checking the password until then. A success clears the account's record.

The state lives in the web process's memory: correct for one server process (the app runs its
jobs in-process on one machine too), lost on restart, and bounded: the oldest records are dropped
beyond `max_keys`. Behind a reverse proxy the client address is the proxy's unless the server is
told to trust its forwarded headers (uvicorn's --proxy-headers).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int
    first: float
    last: float
    reported: float | None = None  # `last` when a refusal since that failure was reported


class Throttle:
    """Failure counts per key with back-off; thread-safe."""

    def __init__(
        self,
        free: int,
        window_s: float = 900.0,
        base_s: float = 1.0,
        max_delay_s: float = 900.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free, self.window_s, self.base_s, self.max_delay_s = free, window_s, base_s, max_delay_s
        self.max_keys, self.clock = max_keys, clock
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many keys have a record now."""
        return len(self._records)

    def _live(self, key: str, now: float) -> _Record | None:
        record = self._records.get(key)
        if record is not None and now - record.last > max(self.window_s, self._delay(record)):
            del self._records[key]
            return None
        return record

    def _delay(self, record: _Record) -> float:
        over = record.failures - self.free
        return 0.0 if over < 0 else min(self.base_s * 2.0**over, self.max_delay_s)

    def wait_s(self, key: str) -> float:
        """Seconds before `key` may try again; 0 when it may now."""
        with self._lock:
            now = self.clock()
            record = self._live(key, now)
            return 0.0 if record is None else max(0.0, record.last + self._delay(record) - now)

    def first_refusal(self, key: str) -> bool:
        """Whether `key` must wait and no refusal was reported since its last failure; reports this one."""
        with self._lock:
            now = self.clock()
            record = self._live(key, now)
            if record is None or record.reported == record.last or now >= record.last + self._delay(record):
                return False
            record.reported = record.last
            return True

    def failed(self, key: str) -> None:
        """Count a failure of `key`."""
        with self._lock:
            now = self.clock()
            record = self._live(key, now)
            if record is None or (record.failures < self.free and now - record.first > self.window_s):
                record = _Record(0, now, now)
            record.failures += 1
            record.last = now
            self._records[key] = record
            self._records.move_to_end(key)
            while len(self._records) > self.max_keys:
                self._records.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """Forget the failures of `key`."""
        with self._lock:
            self._records.pop(key, None)


class LoginThrottle:
    """A throttle for accounts (5 free failures) and one for client addresses (20, shared by a ward's PCs)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, account_free: int = 5, client_free: int = 20
    ) -> None:
        self.accounts = Throttle(account_free, clock=clock)
        self.clients = Throttle(client_free, clock=clock)

    def retry_after_s(self, username: str, client: str) -> int:
        """Whole seconds this attempt must wait (0: it may go ahead)."""
        wait = max(self.accounts.wait_s(username.strip().lower()), self.clients.wait_s(client))
        return math.ceil(wait)

    def first_refusal(self, username: str, client: str) -> bool:
        """Whether a refused attempt is the first since the failure that made the account or the client wait:
        the one worth an audit row, as a guesser's further refusals cost nothing and tell nothing new."""
        account = self.accounts.first_refusal(username.strip().lower())
        return self.clients.first_refusal(client) or account

    def record(self, username: str, client: str, ok: bool) -> None:
        """Count a checked attempt: a failure against both keys, a success clears the account."""
        account = username.strip().lower()
        if ok:
            self.accounts.succeeded(account)
            return
        self.accounts.failed(account)
        self.clients.failed(client)
