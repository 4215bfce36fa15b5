"""A progress bar on stderr while many files are removed (rich; nothing for a few files)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from neurotriage.maintenance.patient_files import OnFile

MANY_FILES = 200  # fewer go in well under a second: no bar


@contextmanager
def file_progress(label: str, total: int | None = None) -> Iterator[OnFile]:
    """Yield the `on_file` callback of a removal. A bar shows from the start when `total` is many files, and
    once that many have gone when the total is unknown; it disappears at the end."""
    from rich.console import Console
    from rich.progress import Progress

    removed = 0
    with ExitStack() as stack:
        bar: Progress | None = None
        task = None

        def on_file() -> None:
            nonlocal removed, bar, task
            removed += 1
            if bar is None and (removed >= MANY_FILES or (total or 0) >= MANY_FILES):
                bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
                task = bar.add_task(label, total=total, completed=removed - 1)
            if bar is not None:
                bar.advance(task)

        yield on_file
