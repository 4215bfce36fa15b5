"""Engines, one-transaction sessions and schema migrations for the clinical database.

Every command runs inside `transaction()`: one database transaction that commits when the block
ends and rolls back on any error, so a failed command leaves the database unchanged. Migrations
run on the same connection, so `db init` (schema + knowledge base) is atomic too; SQLite gets an
explicit BEGIN to make its DDL transactional. A failure around the database (disk, permissions,
locks, a lost or silent server, a duplicate) is a one-line user error; no message carries SQL
parameters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session

from neurotriage.clinical.knowledge import load_knowledge
from neurotriage.config import load_settings
from neurotriage.db import MIGRATIONS
from neurotriage.errors import UserError

CONNECT_TIMEOUT_S = 5
# Every engine: a pooled connection is checked before use (a restarted server costs a reconnect,
# not the command), and no message or log line carries SQL parameters (names, birth dates).
ENGINE_OPTIONS: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
# Find a server machine or network gone away under an idle connection: probe after 30 s of
# silence, then every 10 s, and give up after 3 unanswered probes.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
# The client gives up this long after the server's statement_timeout should have answered.
DEADLINE_GRACE_S = 5
# How long a SQLite writer queues behind others before giving up: long enough for a queue of
# dozens of short writers on a busy 2-core machine (the tests start 50 at once).
BUSY_TIMEOUT_S = 30
VERSION_TABLE = "alembic_version"  # Alembic's default
# The PostgreSQL advisory lock that `db init` / `db upgrade` runs take turns on (any constant).
MIGRATION_LOCK_KEY = 0x6E740001
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table
STATEMENT_CANCELLED = "57014"  # PostgreSQL's SQLSTATE for a statement timeout
LOCKED = "locked"
# What a driver error means for the user: PostgreSQL by SQLSTATE, then by its two-letter class;
# SQLite by extended result code, then by primary code. Anything else is a bug and raises as is.
POSTGRES_PROBLEMS = {
    "08": "connection lost",
    "23505": "duplicate",
    "23": "constraint violated",
    "25006": "read-only",
    "40": "conflict with a concurrent transaction, try again",
    "42501": "permission denied",
    "53100": "disk full",
    "53": "server out of resources",
    "57014": "statement cancelled",
    "57": "server shutting down or restarting",
    "58": "server system error",
    "P0001": "refused by a rule in the database",  # RAISE EXCEPTION in a trigger or function
}
SQLITE_PROBLEMS = {
    sqlite3.SQLITE_BUSY: LOCKED,
    sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY: "duplicate",
    sqlite3.SQLITE_CONSTRAINT_UNIQUE: "duplicate",
    sqlite3.SQLITE_CONSTRAINT: "constraint violated",
    sqlite3.SQLITE_FULL: "disk full",
    sqlite3.SQLITE_READONLY: "permission denied",
    sqlite3.SQLITE_PERM: "permission denied",
    sqlite3.SQLITE_CANTOPEN: "cannot open the file",
    sqlite3.SQLITE_IOERR: "disk I/O error",
    sqlite3.SQLITE_CORRUPT: "damaged file",
    sqlite3.SQLITE_NOTADB: "damaged file",
}

_engines: dict[str, Engine] = {}


def database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else the configured one (NEUROTRIAGE_DATABASE_URL)."""
    return url or load_settings().database_url


def redact(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets real transactions and enforced foreign keys."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return _server_engine(parsed)
        engine = create_engine(parsed, **ENGINE_OPTIONS)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise UserError(f"database URL {redact(url)!r} is not usable: {exc}") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # pysqlite's own transaction handling skips DDL; turn it off and BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        # Write-ahead log: readers never block the writer (the web app), and with NORMAL sync a
        # commit needs no fsync; a power cut can lose the last commits but never corrupts the file.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock at the start, where busy_timeout makes a second writer wait.
        # A deferred BEGIN that reads first cannot wait: its later write fails at once as "locked".
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _server_engine(parsed: URL) -> Engine:
    """A PostgreSQL engine on which connecting, every statement and every commit end in bounded time."""
    timeout_s = load_settings().db_statement_timeout_s
    # The URL's own options come last, so a statement_timeout given there wins.
    options = " ".join((f"-c statement_timeout={timeout_s * 1000}", *parsed.normalized_query.get("options", ())))
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, "options": options, "tcp_user_timeout": timeout_s * 1000}
    engine = create_engine(parsed, connect_args=connect_args | KEEPALIVES, **ENGINE_OPTIONS)
    if parsed.get_driver_name() == "psycopg":
        from neurotriage.clinical.deadline import DeadlineConnection  # psycopg loads only for PostgreSQL

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect, _record, cargs, cparams) -> DeadlineConnection:
            # A frozen server answers neither statement_timeout nor keepalives: the client gives up.
            connection = DeadlineConnection.connect(*cargs, **cparams)
            connection.deadline_s = timeout_s + DEADLINE_GRACE_S
            return connection

    return engine


def engine_for(url: str | None = None) -> Engine:
    """The cached engine for `url` (default: the configured database)."""
    url = database_url(url)
    if url not in _engines:
        _engines[url] = _make_engine(url)
    return _engines[url]


def dispose_engines() -> None:
    """Close every pooled connection (before dropping a database, or at exit)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


def _first_line(exc: DBAPIError) -> str:
    """The driver's message, first line only (psycopg adds hints on further lines)."""
    text = str(exc.orig).strip() if exc.orig is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def _problem(exc: DBAPIError) -> str | None:
    """What went wrong around the database (disk, permissions, server, constraints); None for a bug."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    code = getattr(exc.orig, "sqlite_errorcode", None)
    if sqlstate:
        problem = POSTGRES_PROBLEMS.get(sqlstate) or POSTGRES_PROBLEMS.get(sqlstate[:2])
    elif code is not None:
        problem = SQLITE_PROBLEMS.get(code) or SQLITE_PROBLEMS.get(code & 0xFF)
    else:
        problem = None
    return problem or ("connection lost" if exc.connection_invalidated else None)


class CommitUnknown(UserError):
    """The connection was lost while committing: the server may still have applied the commit."""


def _user_error(exc: DBAPIError, url: str, committing: bool = False) -> UserError | None:
    """The one-line error naming the database for a failure around it; None for a bug."""
    problem = _problem(exc)
    if problem is None:
        return None
    if problem == LOCKED:
        return UserError(f"database {redact(url)} stayed locked by another writer for {BUSY_TIMEOUT_S} s; try again")
    message = f"database {redact(url)}: {problem}: {_first_line(exc)}{_key_columns(exc)}"
    # A server that goes silent after receiving COMMIT may still apply it when it resumes.
    if committing and exc.connection_invalidated:
        return CommitUnknown(f"{message}; the commit may still have been applied")
    return UserError(message)


def _key_columns(exc: DBAPIError) -> str:
    """The table and columns of a PostgreSQL key violation, never its values (patient data)."""
    diag = getattr(exc.orig, "diag", None)
    detail = (diag.message_detail or "") if diag is not None else ""
    if not detail.startswith("Key (") or ")=(" not in detail:
        return ""
    table = f"{diag.table_name}: " if diag.table_name else ""
    return f" ({table}{detail.removeprefix('Key (').split(')=(', 1)[0]})"


def _connect(url: str, create: bool) -> Connection:
    """Open a connection, turning an unreachable database into a one-line user error."""
    path = sqlite_file(url)
    if path is not None:
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise UserError(f"database file {path} does not exist: run `neurotriage db init` first")
    try:
        return engine_for(url).connect()
    except DBAPIError as exc:
        error = _user_error(exc, url) or UserError(f"cannot reach database {redact(url)}: {_first_line(exc)}")
        raise error from None


@cache
def _scripts() -> ScriptDirectory:
    """The migration scripts shipped in the package."""
    return ScriptDirectory.from_config(alembic_config())


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration pointing at the packaged migrations, optionally bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this version of neurotriage knows."""
    return _scripts().get_current_head()


def current_revision(conn: Connection, *, keep_transaction: bool = True) -> str | None:
    """The schema revision recorded in the database, None when it was never migrated.

    Every command checks this, so it reads Alembic's version table directly instead of configuring a
    MigrationContext (measured ~0.9 ms against ~0.1 ms). On PostgreSQL a missing table aborts the
    transaction, so the read runs in a savepoint unless `keep_transaction` is False (a caller that gives
    up on a missing table anyway saves the savepoint's two round trips). Only a missing version table
    means "never migrated": any other failure (a lost server, a damaged file) raises.
    """
    try:
        with conn.begin_nested() if keep_transaction else nullcontext():
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    except DBAPIError as exc:
        if _missing_table(exc):
            return None
        raise


def _missing_table(exc: DBAPIError) -> bool:
    """Whether the driver says a table does not exist."""
    return getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE or str(exc.orig).startswith("no such table")


def known_revision(revision: str) -> bool:
    """Whether `revision` is one of the packaged migrations."""
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


def _unknown_revision(url: str, revision: str) -> UserError:
    return UserError(
        f"database {redact(url)} is at schema revision {revision!r}, which this version of neurotriage"
        f" does not know (made by a newer version?); expected {head_revision()!r}"
    )


def require_head(conn: Connection, url: str) -> None:
    """Refuse a database that is not migrated to exactly this version's schema (the transaction is
    unusable after a refusal)."""
    revision = current_revision(conn, keep_transaction=False)
    if revision == head_revision():
        return
    if revision is None:
        raise UserError(f"database {redact(url)} is not initialised: run `neurotriage db init`")
    if not known_revision(revision):
        raise _unknown_revision(url, revision)
    raise UserError(
        f"database {redact(url)} is at schema revision {revision!r}, this neurotriage needs"
        f" {head_revision()!r}: run `neurotriage db upgrade`"
    )


def migrate(conn: Connection, url: str) -> tuple[str | None, str]:
    """Upgrade the schema to head inside the connection's transaction; (from, to) revisions."""
    before = current_revision(conn)
    if before is not None and not known_revision(before):
        raise _unknown_revision(url, before)
    command.upgrade(alembic_config(conn), "head")
    return before, head_revision()


def refresh_statistics(session: Session) -> None:
    """Update the query planner's statistics after a bulk load.

    Without them SQLite walks every doctor of a specialty instead of starting from the hospitals
    in the search box (measured: ~3x slower referral queries); PostgreSQL's autovacuum gets there
    eventually, this makes it immediate.
    """
    session.execute(text("ANALYZE"))


@contextmanager
def connection(url: str | None = None, *, create: bool = False) -> Iterator[Connection]:
    """One connection in one transaction: commit at the end, roll back on any error.

    A failure around the database (locked after the busy timeout, disk full, permission denied, a
    duplicate, the server gone or silent) is a one-line user error naming it; a bug raises as is."""
    url = database_url(url)
    committing = False
    try:
        with _connect(url, create) as conn, conn.begin():
            yield conn
            committing = True  # leaving the block commits
    except DBAPIError as exc:
        error = _user_error(exc, url, committing)
        if error is None:
            raise
        raise error from None


def _wait_for_other_migrations(conn: Connection, url: str) -> None:
    """Hold the migration lock until the transaction ends, so concurrent runs migrate one after another.

    Two PostgreSQL transactions creating the same tables collide (a duplicate in pg_type) instead
    of waiting; the lock makes the second wait, then find the schema at head and change nothing.
    The wait is bounded by the statement timeout. SQLite's BEGIN IMMEDIATE already queues writers.
    """
    if conn.dialect.name != "postgresql":
        return
    try:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != STATEMENT_CANCELLED:
            raise
        timeout_s = load_settings().db_statement_timeout_s
        raise UserError(
            f"database {redact(url)}: another migration was still running after {timeout_s} s; try again"
        ) from None


def migrate_and_load(url: str | None = None, *, create: bool) -> dict[str, Any]:
    """Migrate to head and load the knowledge base in one transaction (`db init` / `db upgrade`).

    With `create` False the database must already be initialised (`db upgrade`)."""
    url = database_url(url)
    with connection(url, create=create) as conn:
        _wait_for_other_migrations(conn, url)
        if not create and current_revision(conn) is None:
            raise UserError(f"database {redact(url)} is not initialised: run `neurotriage db init`")
        try:
            before, after = migrate(conn, url)
        except DBAPIError as exc:
            raise UserError(f"database {redact(url)}: migration failed: {_first_line(exc)}") from None
        with Session(bind=conn) as session:
            counts = load_knowledge(session)
    return {"database": redact(url), "from_revision": before, "to_revision": after} | counts


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """A session in one transaction on a database at this version's schema revision."""
    url = database_url(url)
    with connection(url) as conn:
        require_head(conn, url)
        with Session(bind=conn, expire_on_commit=False) as session:
            yield session
            session.flush()
