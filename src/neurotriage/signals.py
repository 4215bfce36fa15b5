"""Stopping long-running commands (`worker`, `listen`) cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(stop: threading.Event, say: Callable[[str], None], after: str = "") -> Iterator[None]:
    """While the block runs, a first SIGTERM or SIGINT sets `stop` and says "<SIGNAL>: stopping<after>";
    a second raises KeyboardInterrupt, for whoever cannot wait."""

    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        say(f"{signal.Signals(signum).name}: stopping{after}")

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
