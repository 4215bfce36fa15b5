"""Jobs in worker processes: a failed job stops the queue instead of letting every job run first."""

import subprocess

import pytest

from neurotriage.parallel import run_jobs


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
