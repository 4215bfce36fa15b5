"""Jobs in worker processes (a failed job stops the queue instead of letting every job run first), and
reading ahead in a thread."""

import subprocess
import time

import pytest

from neurotriage.parallel import read_ahead, run_jobs


def test_results_come_back_for_every_job():
    jobs = [(["sh", "-c", "exit 0"],) for _ in range(4)]
    assert list(run_jobs(subprocess.call, jobs, 2, "test", progress=False)) == [0, 0, 0, 0]


def test_a_failed_job_cancels_the_queued_ones(tmp_path):
    jobs = [(["sh", "-c", "exit 3"],)]
    jobs += [(["sh", "-c", f"sleep 0.3 && mkdir {tmp_path}/done{i}"],) for i in range(20)]
    with pytest.raises(subprocess.CalledProcessError):
        list(run_jobs(subprocess.check_call, jobs, 2, "test", progress=False))
    # Jobs already running or handed to a worker (the pool passes on a few ahead) finish; the rest never start.
    assert len(list(tmp_path.iterdir())) <= 6


def test_read_ahead_keeps_order_loads_the_next_item_early_and_reraises():
    started: list[int] = []

    def load(n: int) -> int:
        started.append(n)
        if n == 2:
            raise ValueError("unreadable case 2")
        return n * 10

    seen = []
    for item, future in read_ahead([0, 1, 2, 3], load):
        if item == 2:
            with pytest.raises(ValueError, match="unreadable case 2"):
                future.result()
            continue
        seen.append(future.result())
        if item == 0:
            deadline = time.monotonic() + 5
            while 1 not in started and time.monotonic() < deadline:
                time.sleep(0.01)
            assert 1 in started  # the next item was loading while this one was in use
    assert seen == [0, 10, 30]
    assert list(read_ahead([], load)) == []
