"""Independent jobs (one per case) in worker processes with a progress bar, and reading ahead in a thread."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed

from tqdm import tqdm


def run_jobs(fn: Callable, jobs: Iterable[tuple], workers: int, desc: str, progress: bool = True) -> Iterator:
    """Yield `fn(*job)` for every job as it finishes, in up to `workers` processes (1: in this one)."""
    jobs = list(jobs)
    bar = tqdm(total=len(jobs), desc=desc, unit="case", disable=not progress)
    try:
        if workers <= 1:
            for job in jobs:
                yield fn(*job)
                bar.update()
            return
        # fork starts workers instantly and needs no `if __name__ == "__main__"` guard in the caller's
        # script; it is safe here because the jobs use numpy, scipy and nibabel, never torch's thread pools.
        ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        try:
            futures = [pool.submit(fn, *job) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
                bar.update()
        finally:
            # On Ctrl-C or a failed job, drop the queued jobs instead of finishing them all first.
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()


def read_ahead(items: Iterable, load: Callable) -> Iterator[tuple[object, Future]]:
    """Yield (item, future of `load(item)`) in order, the next item loading in a thread meanwhile.

    For a loop that reads a case and then computes on it: the read of case i + 1 (mostly gzip, which
    releases the GIL) overlaps the computation on case i. `future.result()` re-raises a failed load."""
    items = list(items)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        pending = pool.submit(load, items[0]) if items else None
        for i, item in enumerate(items):
            current = pending
            pending = pool.submit(load, items[i + 1]) if i + 1 < len(items) else None
            yield item, current
    finally:
        # On Ctrl-C or an early stop, do not wait for the next item's read.
        pool.shutdown(wait=False, cancel_futures=True)
