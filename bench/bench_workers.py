"""Queue throughput: studies per minute with 1, 2 and 3 `neurotriage worker --until-empty` processes
over the same studies on PostgreSQL, with the shipped model.

A schema of NEUROTRIAGE_BENCH_DATABASE_URL (or NEUROTRIAGE_TEST_DATABASE_URL) gets the sample
hospitals and doctors and one patient per study; the studies' synthetic cases are generated once
beforehand, so every run diagnoses the same images and generation is not timed. Before each run the
findings are removed and the studies queued again; the wall time runs from starting the workers to
the last one exiting (start-up, imports and model loading included). Each run checks that every
study got exactly one finding.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from bench.databases import scratch_database
from neurotriage.clinical import db, sample
from neurotriage.clinical.models import CrossCheckRecord, Finding, ReferralRecord, Study
from neurotriage.diagnosis import queue
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case

STUDIES = 12
WORKERS = (1, 2, 3)
MAX_RUN_S = 1800


def _prepare(url: str, home: Path, studies: int) -> None:
    """Schema, knowledge base, sample data with `studies` patients, and their cases generated."""
    db.migrate_and_load(url, create=True)
    with db.transaction(url) as session:
        sample.seed_sample(session, n_patients=studies)
        refs = session.execute(select(Study.case_ref, Study.synthetic_seed)).all()
    for case_ref, seed in refs:  # as diagnosis.cases generates them on first use
        write_case(generate_case(seed, case_ref), home / "cases", BRATS2020)


def _requeue(url: str) -> None:
    """Remove every finding and its decisions, and queue all studies afresh."""
    with db.transaction(url) as session:
        for model in (ReferralRecord, CrossCheckRecord, Finding):
            session.execute(delete(model))
        fresh = {"attempts": 0, "last_error": None, "parked_at": None, "queued_at": None}
        session.execute(update(Study).values(claim_token=None, claimed_by=None, lease_until=None, **fresh))
    queue.enqueue_pending(url)


def _findings_per_study(url: str) -> list[int]:
    with db.transaction(url) as session:
        counts = dict(session.execute(select(Finding.study_id, func.count()).group_by(Finding.study_id)).all())
        return [counts.get(study_id, 0) for study_id in session.scalars(select(Study.id))]


def _run(url: str, home: Path, workers: int, studies: int) -> dict[str, Any]:
    _requeue(url)
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": url, "NEUROTRIAGE_HOME": str(home)}
    command = [sys.executable, "-m", "neurotriage", "worker", "--until-empty", "--json"]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(workers)]
    outputs = [p.communicate(timeout=MAX_RUN_S) for p in procs]
    wall = time.perf_counter() - start
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"a worker exited {proc.returncode}: {err.decode()[-500:]}")
    if _findings_per_study(url) != [1] * studies:
        raise RuntimeError(f"not one finding per study: {_findings_per_study(url)}")
    return {
        "workers": workers,
        "wall_s": round(wall, 1),
        "studies_per_min": round(studies / wall * 60, 2),
        "studies_per_worker": sorted(json.loads(out)["done"] for out, _err in outputs),
        "load_1min_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def run(studies: int = STUDIES, workers: tuple[int, ...] = WORKERS) -> dict[str, Any]:
    """Throughput with each worker count over the same `studies` studies on PostgreSQL."""
    admin = os.environ.get("NEUROTRIAGE_BENCH_DATABASE_URL") or os.environ.get("NEUROTRIAGE_TEST_DATABASE_URL")
    if not admin:
        return {"skipped": "no NEUROTRIAGE_BENCH_DATABASE_URL / NEUROTRIAGE_TEST_DATABASE_URL set"}
    result: dict[str, Any] = {"studies": studies, "model": "shipped", "runs": []}
    with tempfile.TemporaryDirectory() as tmp, scratch_database("postgresql", Path(tmp), admin) as url:
        home = Path(tmp)
        _prepare(url, home, studies)
        for count in workers:
            result["runs"].append(_run(url, home, count, studies))
            print(f"bench_workers: {json.dumps(result['runs'][-1])}", flush=True)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
