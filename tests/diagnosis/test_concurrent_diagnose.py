"""Three `diagnose` runs at once, and a `patient add` while they render their reports, on SQLite and PostgreSQL.

The diagnoses run in separate processes through tests/diagnosis/report_gate_cli.py: the real chain
with the oracle model in place of the network, held in the report stage until the test opens the
gate. No write lock may be held there, so the `patient add` lands at once (on SQLite it would
otherwise wait out the busy timeout and fail); then the three store their findings together,
queueing for the write lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from neurotriage.clinical import db, sample
from neurotriage.clinical.models import Finding, Patient, Study
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case

GATE_CLI = Path(__file__).with_name("report_gate_cli.py")
GATE_ENV = "NEUROTRIAGE_TEST_REPORT_GATE"  # the folder GATE_CLI announces the report stage in
DIAGNOSES = 3
REACH_REPORT_S = 300  # for all three to reach their report stage on a busy machine
PROMPT_S = 10  # a `patient add` beside them; SQLite's busy timeout (30 s) is what a held lock would cost


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One full-size synthetic case per diagnosis."""
    root = tmp_path_factory.mktemp("cases")
    return [write_case(generate_case(30 + i, f"SYN_CONC{i}"), root, BRATS2020) for i in range(DIAGNOSES)]


def sample_patients(url: str, n: int) -> list[int]:
    """The sample hospitals and doctors, and `n` sample patients with their symptoms."""
    with db.transaction(url) as session:
        sample.seed_sample(session, n_patients=n)
        return list(session.scalars(select(Patient.id).order_by(Patient.id)))


def wait_for_reports(gate: Path, runs: list[subprocess.Popen]) -> None:
    """Wait until every diagnosis is held in its report stage."""
    deadline = time.monotonic() + REACH_REPORT_S
    while len(list(gate.glob("*.reporting"))) < len(runs):
        ended = [run.communicate()[1] for run in runs if run.poll() is not None]
        assert not ended, f"a diagnosis ended before its report stage: {ended}"
        assert time.monotonic() < deadline, f"not all diagnoses reached their report stage in {REACH_REPORT_S} s"
        time.sleep(0.1)


@contextmanager
def diagnoses(cases: list[Path], ids: list[int], env: dict[str, str]) -> Iterator[list[subprocess.Popen]]:
    """One gated `diagnose --json` process per case and patient; any still running at the end is killed."""
    runs = [
        subprocess.Popen(
            [sys.executable, str(GATE_CLI), "diagnose", str(case), "--patient", str(pid), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for case, pid in zip(cases, ids, strict=True)
    ]
    try:
        yield runs
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.communicate()


def timed_patient_add(env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    """`patient add` in a process of its own, and how long it took."""
    start = time.monotonic()
    added = subprocess.run(
        [sys.executable, "-m", "neurotriage", "patient", "add", "--name", "Added Meanwhile", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return added, time.monotonic() - start


@pytest.mark.slow
def test_three_diagnoses_at_once_and_a_patient_added_meanwhile(db_url, cases, tmp_path) -> None:
    ids = sample_patients(db_url, DIAGNOSES)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": db_url, "NEUROTRIAGE_HOME": str(tmp_path / "home")}
    with diagnoses(cases, ids, env | {GATE_ENV: str(gate)}) as runs:
        wait_for_reports(gate, runs)
        added, added_s = timed_patient_add(env)
        (gate / "open").touch()
        outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0] * DIAGNOSES, [err for _, err in outputs]
    assert added.returncode == 0, added.stderr
    assert added_s < PROMPT_S, f"patient add took {added_s:.1f} s beside diagnoses in their report stage"

    results = [json.loads(out) for out, _ in outputs]
    assert [r["patient_id"] for r in results] == ids
    for result in results:
        report = json.loads((Path(result["report_dir"]) / "report.json").read_text())
        assert report["finding_key"] == result["finding_key"]
    with db.transaction(db_url) as session:
        stored = session.execute(select(Study.patient_id, Finding.id).join(Study, Study.id == Finding.study_id)).all()
        assert sorted(stored) == sorted((r["patient_id"], r["finding_id"]) for r in results)
        assert session.get(Patient, json.loads(added.stdout)["id"]).name == "Added Meanwhile"
