"""The database connection under faults: restarts, lost and frozen servers, full and read-only files."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.pg_cluster import Cluster
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from neurotriage.clinical import db
from neurotriage.clinical.models import Patient, Study
from neurotriage.config import load_settings
from neurotriage.errors import UserError

SECRET = "Ada Secret 1815-12-10"  # stands for patient data that must stay out of messages
on_postgres = pytest.mark.parametrize(
    "db_factory", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


def test_statement_timeout_is_a_setting() -> None:
    assert load_settings({}).db_statement_timeout_s == 30
    assert load_settings({"NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S": "7"}).db_statement_timeout_s == 7
    with pytest.raises(UserError, match="NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S='0': must be at least 1"):
        load_settings({"NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S": "0"})


def _terminate(admin_url: str, pid: int) -> None:
    """End one server backend, as a restart would, and wait until it is gone."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()
    engine.dispose()


@on_postgres
def test_pooled_connection_killed_between_transactions_is_replaced(db_url: str, postgres_url: str) -> None:
    db.dispose_engines()  # the pool then holds one connection: the one killed below
    with db.transaction(db_url) as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    _terminate(postgres_url, pid)
    with db.transaction(db_url) as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) not in (None, pid)


@on_postgres
def test_server_lost_mid_transaction_is_one_line_and_not_uninitialised(db_url: str, postgres_url: str) -> None:
    with pytest.raises(UserError) as caught, db.connection(db_url) as conn:
        _terminate(postgres_url, conn.execute(text("SELECT pg_backend_pid()")).scalar())
        db.require_head(conn, db_url)
    message = str(caught.value)
    assert message.startswith(f"database {db.redact(db_url)}: ") and "\n" not in message
    assert "terminating connection" in message and "not initialised" not in message


def test_damaged_file_is_not_reported_as_uninitialised(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "damaged.db"
    url = f"sqlite:///{path}"
    db.migrate_and_load(url, create=True)
    db.dispose_engines()  # closing the last connection folds the write-ahead log into the file
    with sqlite3.connect(path) as conn:
        page = conn.execute(f"SELECT rootpage FROM sqlite_schema WHERE name = '{db.VERSION_TABLE}'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as file:  # wipe the version table's page only: the schema still reads
        file.seek((page - 1) * size)
        file.write(b"\xff" * size)
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    result = cli("patient", "list")
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"database {url}: damaged file: database disk image is malformed" in result.err


@on_postgres
def test_postgres_connections_carry_timeouts_and_keepalives(db_url: str) -> None:
    with db.connection(db_url) as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "30s"
        # The URL's own options (the test schema's search_path) survive next to the timeout.
        assert conn.execute(text("SHOW search_path")).scalar() == make_url(db_url).query["options"].split("=")[1]
        parameters = conn.connection.dbapi_connection.info.get_parameters()
    assert parameters["keepalives"] == "1" and parameters["tcp_user_timeout"] == "30000"


@on_postgres
def test_statement_past_the_timeout_is_one_line(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S", "1")
    url = make_url(db_url).update_query_dict({"application_name": "timeout-test"}).render_as_string(False)
    started = time.monotonic()
    cancelled = "statement cancelled: canceling statement due to statement timeout$"
    with pytest.raises(UserError, match=cancelled), db.connection(url) as conn:
        conn.execute(text("SELECT pg_sleep(5)"))
    assert time.monotonic() - started < 3


def test_duplicate_names_the_constraint_not_the_values(db_url: str) -> None:
    with pytest.raises(UserError) as caught, db.transaction(db_url) as session:
        patient = Patient(name=SECRET)
        session.add(patient)
        session.flush()
        session.add_all([Study(patient_id=patient.id, case_ref=SECRET) for _ in range(2)])
    message = str(caught.value)
    assert message.startswith(f"database {db.redact(db_url)}: duplicate: ") and "\n" not in message
    assert "studies" in message and "case_ref" in message and SECRET not in message


def test_a_bug_still_raises_but_without_parameters(db_url: str) -> None:
    with pytest.raises(DBAPIError) as caught, db.connection(db_url) as conn:
        conn.execute(text("INSERT INTO no_such_table (name) VALUES (:name)"), {"name": SECRET})
    assert "no_such_table" in str(caught.value) and SECRET not in str(caught.value)


def test_full_database_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'full.db'}"
    db.migrate_and_load(url, create=True)

    @event.listens_for(db.engine_for(url), "connect")
    def _no_room_to_grow(dbapi_connection, _record) -> None:
        # SQLite's own size limit fails a write exactly as a full disk does (SQLITE_FULL).
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    db.engine_for(url).dispose()
    with pytest.raises(UserError) as caught, db.transaction(url) as session:
        session.add_all([Patient(name=f"{SECRET} {i}" * 20) for i in range(500)])
    assert str(caught.value) == f"database {url}: disk full: database or disk is full"


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` unwritable, even for root (an immutable file); skips where root cannot make it so."""
    path.chmod(0o444)
    if os.geteuid() != 0:
        yield
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("as root only an immutable file is read-only, and chattr +i failed here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_read_only_database_file_is_one_line(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "read-only.db"
    url = f"sqlite:///{path}"
    db.migrate_and_load(url, create=True)
    db.dispose_engines()
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    with read_only(path):
        result = cli("patient", "add", "--name", SECRET)
    assert result.code == 2 and result.err.count("\n") == 1 and SECRET not in result.err
    assert f"database {url}: permission denied: attempt to write a readonly database" in result.err


# --- A throwaway PostgreSQL cluster of this module's own (`own_cluster`), frozen with SIGSTOP ---


@pytest.mark.slow
def test_frozen_server_gives_an_error_within_the_deadline(own_cluster: Cluster, monkeypatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DB_STATEMENT_TIMEOUT_S", "1")
    monkeypatch.setattr(db, "DEADLINE_GRACE_S", 1)  # the client gives up 2 s into a silent call
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_S", 2)  # libpq's shortest
    url = own_cluster.url
    with db.connection(url, create=True) as conn:
        conn.execute(text("CREATE TABLE t (x int)"))
    # Should the client wait for ever, the server goes on after 20 s and the test fails instead of hanging.
    safety = threading.Timer(20, own_cluster.signal, (signal.SIGCONT,))
    safety.start()
    try:
        # Frozen before COMMIT: the commit's wait ends at the deadline.
        with pytest.raises(UserError) as caught, db.connection(url) as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            own_cluster.signal(signal.SIGSTOP)
            started = time.monotonic()
        waited = time.monotonic() - started
        assert str(caught.value) == (
            f"database {url}: connection lost: no answer from the server within 2 s;"
            " the commit may still have been applied"  # it was: the server read COMMIT once it went on
        )
        assert 2 <= waited < 4
        own_cluster.signal(signal.SIGCONT)
        with db.connection(url) as conn:  # the server is back: a new connection works
            assert conn.execute(text("SELECT 1")).scalar() == 1
        # Frozen while the connection rests in the pool: the ping before use and the reconnect
        # each end at their deadline.
        own_cluster.signal(signal.SIGSTOP)
        started = time.monotonic()
        unreachable = re.escape(f"cannot reach database {url}: connection timeout expired")
        with pytest.raises(UserError, match=unreachable), db.connection(url):
            pass
        assert 4 <= time.monotonic() - started < 7
    finally:
        safety.cancel()
        own_cluster.signal(signal.SIGCONT)
