"""Concurrent batch runs and queue workers in separate processes: every study is diagnosed once.

The processes run the real chain with the oracle model (tests/diagnosis/oracle_cli.py). All studies
share one synthetic case, so the processes also race to generate it on first use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

import pytest
from sqlalchemy import func, select, update

from neurotriage.clinical import db, sample
from neurotriage.clinical.models import Finding, Study
from neurotriage.diagnosis import queue

ORACLE_CLI = Path(__file__).with_name("oracle_cli.py")


def sample_studies(url: str, n: int) -> list[int]:
    """`n` sample patients, each with a study of the same synthetic case."""
    with db.transaction(url) as session:
        sample.seed_sample(session, n_patients=n)
        session.execute(update(Study).values(case_ref="SYN_0000", synthetic_seed=0))
        return list(session.scalars(select(Study.id).order_by(Study.id)))


def start(url: str, home: Path, *args: str, hang_s: float = 0) -> subprocess.Popen:
    env = os.environ | {
        "NEUROTRIAGE_DATABASE_URL": url,
        "NEUROTRIAGE_HOME": str(home),
        "NEUROTRIAGE_TEST_HANG_S": str(hang_s),
    }
    return subprocess.Popen(
        [sys.executable, str(ORACLE_CLI), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen) -> dict:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out)


def wait_for_line(process: subprocess.Popen, text: str, timeout_s: float = 60) -> None:
    """Read the process's stderr (in a thread, so a silent process cannot block the test) until a line holds `text`."""
    lines: Queue[str] = Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=deadline - time.monotonic()):
                return
        except Empty:
            break
    raise AssertionError(f"no {text!r} on stderr within {timeout_s} s")


def findings_per_study(url: str) -> dict[int, int]:
    with db.transaction(url) as session:
        return dict(session.execute(select(Finding.study_id, func.count()).group_by(Finding.study_id)).all())


@pytest.mark.slow
def test_two_concurrent_all_pending_runs_diagnose_each_study_once(db_url, tmp_path):
    ids = sample_studies(db_url, 4)
    runs = [start(db_url, tmp_path, "diagnose", "--all-pending", "--json") for _ in range(2)]
    results = [finish(run) for run in runs]
    diagnosed = sorted(row["study_id"] for result in results for row in result["studies"])
    assert diagnosed == ids and all(row["ok"] for result in results for row in result["studies"])
    assert findings_per_study(db_url) == dict.fromkeys(ids, 1)
    assert [p.name for p in (tmp_path / "cases").iterdir()] == ["SYN_0000"]


def claim_of(url: str, process: subprocess.Popen) -> int | None:
    """The study a worker process holds a claim on, if any."""
    with db.transaction(url) as session:
        return session.scalar(select(Study.id).where(Study.claimed_by.endswith(f":{process.pid}")))


def wait_for_claim(url: str, process: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while (held := claim_of(url, process)) is None:
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()[1]
        time.sleep(0.1)
    return held


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_one_killed_mid_study_diagnose_each_study_once(db_url, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out over several workers is for PostgreSQL")
    ids = sample_studies(db_url, 12)
    assert queue.enqueue_pending(db_url) == 12
    worker = ("worker", "--until-empty", "--lease", "4", "--poll", "0.5", "--json")
    victim = start(db_url, tmp_path, *worker, hang_s=600)  # stays in its first study until killed
    survivors = [start(db_url, tmp_path, *worker) for _ in range(2)]
    held = wait_for_claim(db_url, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    results = [finish(worker) for worker in survivors]
    assert sum(r["done"] for r in results) == 12 and not any(r["failed"] or r["lost"] for r in results)
    assert findings_per_study(db_url) == dict.fromkeys(ids, 1)
    with db.transaction(db_url) as session:
        taken_over = session.get(Study, held)
        assert (taken_over.attempts, taken_over.claim_token, taken_over.queued_at) == (2, None, None)
        assert session.scalar(select(func.count()).where(Study.attempts != 1)) == 1


@pytest.mark.slow
def test_sigterm_finishes_the_current_study_and_a_second_one_gives_it_back(db_url, tmp_path):
    if db_url.startswith("postgresql"):
        pytest.skip("signal handling does not depend on the database")
    sample_studies(db_url, 2)
    assert queue.enqueue_pending(db_url) == 2
    finishing = start(db_url, tmp_path, "worker", "--json", hang_s=5)
    interrupted = start(db_url, tmp_path, "worker", "--json", hang_s=600)
    finished = wait_for_claim(db_url, finishing)
    finishing.send_signal(signal.SIGTERM)
    given_back = wait_for_claim(db_url, interrupted)
    interrupted.send_signal(signal.SIGTERM)
    # Two signals before the first is handled would be one: send the second once the worker says so.
    wait_for_line(interrupted, "SIGTERM: stopping after the current study")
    interrupted.send_signal(signal.SIGTERM)
    assert finish(finishing)["done"] == 1
    assert interrupted.wait(timeout=60) == 130
    assert findings_per_study(db_url) == {finished: 1}
    with db.transaction(db_url) as session:
        back = session.get(Study, given_back)
        assert (back.attempts, back.claim_token, back.last_error) == (0, None, None) and back.queued_at is not None
