"""Kill a `neurotriage` command while its database write transaction is open, and read what it left.

A child runs `python -m neurotriage ARGS` on a database URL. Whether its write transaction is open
is read from outside, without touching the transaction: on SQLite, the child holds the WAL write
lock (a POSIX lock on byte 120 of the `-shm` file, listed in /proc/locks; Linux only); on
PostgreSQL, a backend with the child's application_name holds an advisory lock (the migration
lock) or its own transaction id (it has written). `State` is what a database holds, compared
between runs: schema revision, the rows of every table, and SQLite's integrity check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, func, inspect, select, table, text
from sqlalchemy.engine import make_url

from neurotriage.clinical import db

POLL_S = 0.005
OPEN_TIMEOUT_S = 120  # for a child to open its write transaction
GONE_TIMEOUT_S = 60  # for the server to end a killed child's session
RUN_TIMEOUT_S = 600
PROC_LOCKS = Path("/proc/locks")
WAL_WRITE_LOCK = 120  # SQLite's WAL write lock: this byte of the -shm file, locked exclusively
# A PostgreSQL session with its own transaction id has written; the advisory lock is the migration lock.
PG_WRITING = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE a.application_name = :tag AND l.granted
  AND (l.locktype = 'advisory' OR (l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock'))
"""
PG_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :tag"


@dataclass(frozen=True)
class State:
    """What a database holds: schema revision, rows per table, and whether SQLite finds it intact."""

    revision: str | None
    rows: dict[str, int] = field(default_factory=dict)
    intact: bool = True


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for other backends."""
    parsed = make_url(url)
    return Path(parsed.database) if parsed.get_backend_name() == "sqlite" else None


def read_state(url: str) -> State:
    """The database's state; a SQLite file that does not exist is an empty database."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return State(None)
    with db.connection(url) as conn:
        intact = path is None or conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        names = sorted(inspect(conn).get_table_names())
        rows = {name: conn.execute(select(func.count()).select_from(table(name))).scalar_one() for name in names}
        return State(db.current_revision(conn), rows, intact)


class SqliteProbe:
    """Tells whether a process holds the write lock of a SQLite database in WAL mode."""

    def __init__(self, url: str) -> None:
        if not PROC_LOCKS.exists():
            raise RuntimeError(f"{PROC_LOCKS} is missing: watching SQLite's locks needs Linux")
        self.url, self.shm = url, Path(f"{sqlite_path(url)}-shm")

    def child_url(self) -> str:
        """The URL the child connects with."""
        return self.url

    def writing(self, pid: int) -> bool:
        """Whether `pid` holds the WAL write lock (granted, not waiting for it)."""
        try:
            inode = self.shm.stat().st_ino
        except FileNotFoundError:
            return False
        # "1: POSIX  ADVISORY  WRITE 892 fe:00:2156145 120 120": a waiter has "->" after the number.
        held = ("WRITE", str(pid), str(inode), str(WAL_WRITE_LOCK))
        for line in PROC_LOCKS.read_text().splitlines():
            parts = line.split()
            if len(parts) == 8 and (parts[3], parts[4], parts[5].rsplit(":", 1)[1], parts[6]) == held:
                return True
        return False

    def wait_gone(self) -> None:
        """A killed process's locks go with it: nothing to wait for."""

    def close(self) -> None:
        """Nothing to release."""


class PostgresProbe:
    """Tells whether the child's PostgreSQL session is inside a writing transaction."""

    def __init__(self, url: str) -> None:
        self.url, self.tag = url, f"nt-kill-{uuid.uuid4().hex[:12]}"
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")

    def child_url(self) -> str:
        """The URL the child connects with: tagged, so its sessions can be found."""
        return make_url(self.url).update_query_dict({"application_name": self.tag}).render_as_string(False)

    def _count(self, query: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(text(query), {"tag": self.tag}).scalar_one()

    def writing(self, _pid: int) -> bool:
        """Whether a session of the child has written or holds the migration lock."""
        return self._count(PG_WRITING) > 0

    def wait_gone(self) -> None:
        """Wait until the server has ended the sessions of a killed child (and released their locks)."""
        deadline = time.monotonic() + GONE_TIMEOUT_S
        while self._count(PG_SESSIONS):
            if time.monotonic() > deadline:
                raise RuntimeError(f"a killed child's session {self.tag} still runs after {GONE_TIMEOUT_S} s")
            time.sleep(0.05)

    def close(self) -> None:
        """Close the probe's connections."""
        self.engine.dispose()


@contextmanager
def probe_for(url: str) -> Iterator[SqliteProbe | PostgresProbe]:
    """The probe for the database at `url`."""
    probe = SqliteProbe(url) if sqlite_path(url) is not None else PostgresProbe(url)
    try:
        yield probe
    finally:
        probe.close()


@dataclass(frozen=True)
class Run:
    """How one child went: its exit, timings, and whether a kill found it writing."""

    returncode: int
    stderr: str
    seconds: float  # from start to exit
    opened_s: float | None  # when the write transaction was first seen open, from start
    write_s: float | None  # from first to last seen open (None: never seen)
    killed_while_writing: bool = False


def _start(url: str, args: tuple[str, ...], home: Path) -> subprocess.Popen:
    env = os.environ | {"NEUROTRIAGE_DATABASE_URL": url, "NEUROTRIAGE_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "neurotriage", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_command(url: str, args: tuple[str, ...], home: Path, kill_after_s: float | None = None) -> Run:
    """Run `neurotriage ARGS` on `url` in a child; with `kill_after_s`, SIGKILL it that long after its
    write transaction is seen open (the probe looks once more just before the kill)."""
    with probe_for(url) as probe:
        start = time.monotonic()
        child = _start(probe.child_url(), args, home)
        opened = last_seen = None
        killed_while_writing = False
        while child.poll() is None:
            now, writing = time.monotonic(), probe.writing(child.pid)
            if writing:
                opened, last_seen = opened or now, now
            if opened is not None and kill_after_s is not None and now - opened >= kill_after_s:
                killed_while_writing = probe.writing(child.pid)
                child.kill()
                break
            if opened is None and now - start > OPEN_TIMEOUT_S:
                child.kill()
                raise RuntimeError(f"`neurotriage {' '.join(args)}` opened no write transaction in {OPEN_TIMEOUT_S} s")
            time.sleep(POLL_S)
        _, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
        end = time.monotonic()
        probe.wait_gone()
    write_s = None if opened is None else last_seen - opened
    return Run(
        child.returncode,
        stderr,
        end - start,
        None if opened is None else opened - start,
        write_s,
        killed_while_writing,
    )
