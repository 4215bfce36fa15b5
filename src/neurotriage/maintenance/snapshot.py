"""A consistent copy of the clinical database, taken while the server runs, and the findings it holds.

SQLite: the online backup API copies the whole database in one step, which is one read transaction;
in WAL mode (as `clinical.db` opens every database) a reader neither waits for writers nor blocks
them, so a transaction held open elsewhere does not stop the copy and is not in it. PostgreSQL:
pg_dump, in a REPEATABLE READ snapshot that this module exports and reads the findings from too, so
that what the backup says about report folders is true of the very dump it archives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.engine import make_url

from neurotriage.clinical import db
from neurotriage.errors import UserError
from neurotriage.maintenance.pg_tools import client_program, connection_args, quoted_pattern, run_program

SQLITE_NAME = "neurotriage.db"
DUMP_NAME = "neurotriage.dump"
FINDINGS_SQL = "SELECT key, report_dir FROM findings WHERE key IS NOT NULL ORDER BY id"
REVISION_SQL = "SELECT version_num FROM alembic_version"


@dataclass(frozen=True)
class Snapshot:
    """A copy of the database in `file`, and what it holds that the files must agree with."""

    kind: str  # "sqlite" or "postgresql"
    file: Path
    revision: str
    schema_name: str | None  # PostgreSQL: the schema dumped
    reports: dict[Path, str]  # each report folder (resolved) -> the key of the last finding written to it
    keys: frozenset[str]  # every finding's key


def backend(url: str) -> str:
    """The database kind of `url`: "sqlite" or "postgresql"; UserError for any other."""
    kind = make_url(url).get_backend_name()
    if kind not in ("sqlite", "postgresql"):
        raise UserError(f"database {db.redact(url)}: only SQLite and PostgreSQL databases can be backed up")
    return kind


def take_snapshot(url: str, folder: Path) -> Snapshot:
    """Copy the database of `url` into `folder` as one consistent snapshot."""
    if backend(url) == "sqlite":
        return _sqlite_snapshot(url, folder)
    return _postgres_snapshot(url, folder)


def sqlite_path(url: str) -> Path:
    """The file of a SQLite URL; UserError for an in-memory database."""
    path = db.sqlite_file(url)
    if path is None:
        raise UserError(f"database {db.redact(url)}: an in-memory database has nothing to back up or restore")
    return path


def open_sqlite(path: Path) -> sqlite3.Connection:
    """A read-only connection to a SQLite file that waits for a committing writer like `clinical.db` does."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=db.BUSY_TIMEOUT_S)


def _sqlite_snapshot(url: str, folder: Path) -> Snapshot:
    source = sqlite_path(url)
    if not source.is_file():
        raise UserError(f"database file {source} does not exist")
    target = folder / SQLITE_NAME
    try:
        with closing(open_sqlite(source)) as live, closing(sqlite3.connect(target)) as copy:
            live.backup(copy)  # all pages in one step: a single read transaction
            copy.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            tables = {row[0] for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            revision = copy.execute(REVISION_SQL).fetchone()[0] if "alembic_version" in tables else None
            rows = copy.execute(FINDINGS_SQL).fetchall() if revision else []
    except sqlite3.Error as exc:
        raise UserError(f"database {source}: cannot copy it: {exc}") from None
    return _snapshot("sqlite", target, url, revision, None, rows)


def _postgres_snapshot(url: str, folder: Path) -> Snapshot:
    target = folder / DUMP_NAME
    with db.connection(url) as conn:
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        exported = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
        schema, major = schema_and_version(conn, url)
        revision = db.current_revision(conn)
        rows = conn.exec_driver_sql(FINDINGS_SQL).fetchall() if revision else []
        if revision:  # pg_dump reads the snapshot while this transaction holds it
            dump(url, major, schema, exported, target)
    return _snapshot("postgresql", target, url, revision, schema, rows)


def schema_and_version(conn: Connection, url: str) -> tuple[str, int]:
    """The schema the connection's tables live in, and the server's major version."""
    schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    if schema is None:
        raise UserError(f"database {db.redact(url)}: its search_path names no schema that exists")
    return schema, int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) // 10000


def dump(url: str, server_major: int, schema: str, exported: str, target: Path) -> None:
    """pg_dump one schema, as the exported snapshot `exported` sees it, into `target` (custom format)."""
    conninfo, env = connection_args(url)
    program = client_program("pg_dump", server_major)
    command = [str(program), "--format=custom", f"--schema={quoted_pattern(schema)}", f"--snapshot={exported}"]
    run_program([*command, f"--file={target}", f"--dbname={conninfo}"], env, f"database {db.redact(url)}")


def _snapshot(
    kind: str, file: Path, url: str, revision: str | None, schema: str | None, rows: Sequence[tuple[str, str | None]]
) -> Snapshot:
    if revision is None:
        raise UserError(f"database {db.redact(url)} is not initialised: there is nothing to back up")
    reports = {Path(folder).resolve(): key for key, folder in rows if folder}  # by id: the last one wins
    return Snapshot(kind, file, revision, schema, reports, frozenset(key for key, _ in rows))


def stored_keys(url: str, keys: set[str]) -> set[str]:
    """Which of the finding keys `keys` the live database holds now (read without taking a write lock)."""
    if not keys:
        return set()
    if backend(url) == "sqlite":
        marks = ", ".join("?" * len(keys))
        with closing(open_sqlite(sqlite_path(url))) as conn:
            return {row[0] for row in conn.execute(f"SELECT key FROM findings WHERE key IN ({marks})", list(keys))}
    query = text("SELECT key FROM findings WHERE key IN :keys").bindparams(bindparam("keys", expanding=True))
    with db.connection(url) as conn:
        return set(conn.execute(query, {"keys": list(keys)}).scalars())
