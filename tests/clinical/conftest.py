"""Database fixtures: the same tests run on SQLite and on PostgreSQL.

PostgreSQL comes from NEUROTRIAGE_TEST_DATABASE_URL (exported by `.ci/postgres.sh`): a role that
may create databases. Each backend gets one migrated database per session, emptied before every
test; tests that need an empty or broken database get a fresh one. With CI=true an unreachable
server fails the PostgreSQL tests; elsewhere they are skipped with a one-line reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from bench import pg_cluster
from bench.databases import DatabaseFactory
from sqlalchemy import create_engine, text

import neurotriage.cli
from neurotriage.clinical import db

PG_ENV = "NEUROTRIAGE_TEST_DATABASE_URL"
# Children first, so SQLite can delete in order with foreign keys enforced.
DATA_TABLES = (
    "referrals",
    "crosschecks",
    "findings",
    "patient_symptoms",
    "studies",
    "patients",
    "doctors",
    "hospitals",
)


def _postgres_problem(url: str | None) -> str | None:
    """Why PostgreSQL tests cannot run, or None when the server answers."""
    if not url:
        return f"{PG_ENV} is not set (source .ci/postgres.sh to start a local server)"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means the same: no usable server
        return f"PostgreSQL at {db.redact(url)} is unreachable: {str(exc).strip().splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The admin URL of the test server; fails under CI=true when unreachable, else skips."""
    url = os.environ.get(PG_ENV)
    problem = _postgres_problem(url)
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)
    return url


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_factory(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    """A database factory for each backend in turn."""
    admin = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    factory = DatabaseFactory(request.param, tmp_path_factory.mktemp(f"db-{request.param}"), admin)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def migrated_url(db_factory: DatabaseFactory) -> str:
    """One database per backend, migrated and holding the knowledge base."""
    url = db_factory.create()
    db.migrate_and_load(url, create=True)
    return url


def empty_data_tables(url: str) -> None:
    """Remove all patients, hospitals, doctors and decisions; the knowledge base stays."""
    with db.connection(url) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE"))
        else:
            for table in DATA_TABLES:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def db_url(migrated_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The backend's migrated database, emptied, and made the configured database."""
    empty_data_tables(migrated_url)
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", migrated_url)
    return migrated_url


@pytest.fixture
def reset_data() -> Callable[[str], None]:
    """The function that empties the data tables of a database (for tests that reload data)."""
    return empty_data_tables


@pytest.fixture
def fresh_url(db_factory: DatabaseFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty (uninitialised) database, made the configured database."""
    url = db_factory.create()
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    return url


@dataclass
class Run:
    """Outcome of one CLI call."""

    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `neurotriage ARGS...` in-process (each run registers only its own command module)."""

    def run(*args: object) -> Run:
        capsys.readouterr()
        code = neurotriage.cli.main([str(a) for a in args])
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[pg_cluster.Cluster]:
    """A throwaway PostgreSQL cluster of the test module's own, to stop, restart or freeze; skipped
    without server binaries (fails under CI=true)."""
    binaries = pg_cluster.server_binaries()
    if binaries is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {pg_cluster.MISSING}")
        pytest.skip(pg_cluster.MISSING)
    with pg_cluster.own_cluster(binaries) as cluster:
        yield cluster
