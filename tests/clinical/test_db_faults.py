"""Database commands killed mid-way, or run twice at once, on SQLite and PostgreSQL.

Each of `db init`, `db upgrade` (from an older revision), `db seed --sample` and a 20,000-row
`db import patients` is SIGKILLed while its write transaction is open, a third of the way through
it (bench/bench_db_faults.py runs the same matrix at 100,000 rows and three kill points). The
database must then hold all of the command's effect or none of it, and running the command again
must succeed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.bench_db_faults import Command, commands, kill_matrix
from bench.db_kill import PROC_LOCKS, read_state
from sqlalchemy import create_engine, text

from neurotriage.clinical import db

IMPORT_ROWS = 20_000
UPGRADE_ROWS = 2_000
KILL_AT = 0.3  # of the clean run's write transaction: inside it even if the killed run is faster


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Command]:
    """The matrix's commands by action (init, upgrade, seed, import), with the import's CSV written once."""
    return {c.args[1]: c for c in commands(tmp_path_factory.mktemp("csv"), IMPORT_ROWS, UPGRADE_ROWS)}


@pytest.mark.skipif(not PROC_LOCKS.exists(), reason="watching SQLite's write lock needs Linux's /proc/locks")
@pytest.mark.parametrize("action", ["init", "upgrade", "seed", "import"])
def test_a_killed_command_leaves_all_or_nothing_and_runs_again(action, matrix, db_factory, tmp_path) -> None:
    (row,) = kill_matrix(matrix[action], db_factory.create, tmp_path / "home", fractions=(KILL_AT,))
    assert row.killed_while_writing, f"the kill at {row.killed_at_s} s came after the transaction"
    assert row.effect == "none", f"a kill inside the transaction left {row.effect!r} of the effect, not none"
    assert row.rerun_ok, row.rerun_error


def start_init(url: str, home: Path) -> subprocess.Popen:
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": url, "NEUROTRIAGE_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "neurotriage", "db", "init"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_inits_at_once_build_the_schema_once(db_factory, tmp_path) -> None:
    url, reference = db_factory.create(), db_factory.create()
    runs = [start_init(url, tmp_path) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    schemas = sorted(out.split(": ", 1)[1].split(";")[0] for out, _ in outputs)
    head = db.head_revision()
    assert schemas == [f"schema at {head}", f"schema empty -> {head}"]
    db.migrate_and_load(reference, create=True)
    assert read_state(url) == read_state(reference)


def test_a_migration_waiting_past_the_statement_timeout_says_so(fresh_url, cli, monkeypatch) -> None:
    if not fresh_url.startswith("postgresql"):
        pytest.skip("SQLite queues migrations behind its write lock (BEGIN IMMEDIATE)")
    monkeypatch.setenv("NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S", "1")
    holder = create_engine(fresh_url)
    with holder.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": db.MIGRATION_LOCK_KEY})
        result = cli("db", "init")
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": db.MIGRATION_LOCK_KEY})
    holder.dispose()
    assert result.code == 2
    assert result.err.count("\n") == 1 and "another migration was still running after 1 s; try again" in result.err
    assert cli("db", "init").code == 0
