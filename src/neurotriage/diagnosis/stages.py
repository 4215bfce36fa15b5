"""Per-stage progress with timings, on stderr so JSON output on stdout stays clean."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class StageTimer:
    """Shows a spinner while a stage runs and a line with its duration when it ends."""

    def __init__(self, console: Console | None = None, quiet: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one named stage; a failing stage prints nothing, so its error stays the one line shown."""
        start = time.perf_counter()
        if self.quiet:
            yield
        else:
            with self.console.status(f"{name}..."):
                yield
        elapsed = time.perf_counter() - start
        self.timings[name] = round(elapsed, 2)
        if not self.quiet:
            self.console.print(f"  {name:<24} [green]done[/green] {elapsed:6.1f} s")
