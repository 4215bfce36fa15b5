"""Concurrent writers wait for each other instead of failing, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.clinical.models import Patient

WRITERS = 50


@pytest.mark.slow
def test_fifty_concurrent_patient_adds_all_land(db_url: str) -> None:
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": db_url}
    command = [
        sys.executable,
        "-m",
        "neurotriage",
        "patient",
        "add",
        "--city",
        "Leeds",
        "--lat",
        "53.8",
        "--lon",
        "-1.5",
    ]
    runs = [
        subprocess.Popen(
            [*command, "--name", f"Concurrent {i}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for i in range(WRITERS)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in runs]
    failed = [(p.returncode, e) for p, e in zip(runs, errors, strict=True) if p.returncode != 0]
    assert failed == []
    with db.transaction(db_url) as session:
        assert (
            session.scalar(select(func.count()).select_from(Patient).where(Patient.name.like("Concurrent %")))
            == WRITERS
        )
