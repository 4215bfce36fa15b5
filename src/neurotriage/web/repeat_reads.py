"""Which repeated reads to audit: the first read of a target by a user in a window, not every poll.

A job page polls its job's status every second; auditing each poll would write a row a second
per open page. The first read in each window is audited; the state is the web process's memory,
bounded, and lost on restart (the next read is audited again).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class RepeatReads:
    """Remembers when each (user, target) read was last audited; thread-safe."""

    def __init__(self, window_s: float = 600.0, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.max_keys, self.clock = window_s, max_keys, clock
        self._audited: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def should_audit(self, key: Hashable) -> bool:
        """True for the first read of `key` in the window (and records it), False for repeats."""
        with self._lock:
            now = self.clock()
            last = self._audited.get(key)
            if last is not None and now - last < self.window_s:
                return False
            self._audited[key] = now
            self._audited.move_to_end(key)
            while len(self._audited) > self.max_keys:
                self._audited.popitem(last=False)
            return True
