"""Kill matrix for the database commands: `db init`, `db upgrade` (from revision 0003), `db seed --sample`
and a 100,000-row `db import patients`, each SIGKILLed while its write transaction is open, on SQLite
and PostgreSQL.

A clean run of each command on a database prepared the same way gives the state the command leads
to and how long it writes (from its write transaction first to last seen open); then each kill runs
on a new database, at 10 %, 50 % and 90 % of that time after the transaction is seen open
(bench/db_kill.py says how it is seen). A kill is consistent when the database holds exactly the
state before the command or the clean run's state (schema revision, rows of every table, SQLite's
integrity check); the re-run is ok when running the command again reaches the clean run's state
with exit 0 (or, after a kill that landed past the commit, the exit of a repeated command: the
import refuses its rows again as probable duplicates, exit 2). The seconds are the clean run's and
the re-run's, start to exit. PostgreSQL uses NEUROTRIAGE_BENCH_DATABASE_URL or
NEUROTRIAGE_TEST_DATABASE_URL, a schema per database, dropped afterwards; without a reachable server
its rows are skipped with a note. tests/clinical/test_db_faults.py runs one kill per command and
backend at a smaller size.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command as alembic
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.databases import DatabaseFactory
from bench.db_kill import Run, State, read_state, run_command
from neurotriage.clinical import db, sample
from neurotriage.clinical.knowledge import load_knowledge

IMPORT_ROWS = 100_000
UPGRADE_ROWS = 100_000  # patients in the database `db upgrade` migrates
KILL_AT = (0.1, 0.5, 0.9)  # fractions of the clean run's write transaction
OLD_REVISION = "0003"
PG_ENVS = ("NEUROTRIAGE_BENCH_DATABASE_URL", "NEUROTRIAGE_TEST_DATABASE_URL")
COLUMNS = ("command", "backend", "when killed", "effect", "consistent", "re-run ok", "seconds clean / re-run")


def patients(n: int) -> Iterator[dict[str, Any]]:
    """`n` fictional patients with distinct names (never probable duplicates of each other)."""
    rng = random.Random(n)
    for i in range(n):
        born = date(rng.randint(1930, 2010), rng.randint(1, 12), rng.randint(1, 28))
        city = sample.CITIES[i % len(sample.CITIES)][0]
        yield {"name": f"Imported Patient {i:06d}", "sex": "female", "birth_date": born, "city": city}


def write_patients_csv(path: Path, n: int) -> Path:
    """A patients CSV of `n` rows."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["name", "sex", "birth_date", "city"])
        writer.writeheader()
        writer.writerows(patients(n))
    return path


OLD_PATIENT_COLUMNS = ("name", "sex", "birth_date", "city", "language_dominance", "created_at")


def at_old_revision(rows: int) -> Callable[[str], None]:
    """Prepares a database as an earlier neurotriage left it: schema at OLD_REVISION, knowledge base,
    the sample hospitals and doctors, and `rows` patients."""

    def prepare(url: str) -> None:
        with db.connection(url, create=True) as conn:
            alembic.upgrade(db.alembic_config(conn), OLD_REVISION)
            with Session(bind=conn) as session:
                load_knowledge(session)
                sample.add_hospitals_and_doctors(session, sample.N_HOSPITALS, sample.N_DOCTORS, random.Random(1))
                # The patients table as it was then: the model's newer columns (MRN, confirmed) are not there yet.
                old_patients = sa.table("patients", *(sa.column(name) for name in OLD_PATIENT_COLUMNS))
                now = datetime.now(UTC).replace(tzinfo=None)
                filled = {"language_dominance": "left", "created_at": now}
                session.execute(insert(old_patients), [row | filled for row in patients(rows)])

    return prepare


def initialised(url: str) -> None:
    """Prepares a database as `db init` leaves it."""
    db.migrate_and_load(url, create=True)


@dataclass(frozen=True)
class Command:
    """One command of the matrix: its arguments, how to prepare the database it runs on, and the exit
    code of running it again once it has succeeded."""

    name: str
    args: tuple[str, ...]
    prepare: Callable[[str], None]
    again_code: int = 0


def commands(workdir: Path, import_rows: int, upgrade_rows: int) -> list[Command]:
    """The matrix's commands; writes the import's CSV into `workdir`."""
    csv_path = write_patients_csv(workdir / f"patients-{import_rows}.csv", import_rows)
    return [
        Command("db init", ("db", "init"), lambda _url: None),
        Command(f"db upgrade {OLD_REVISION}->head", ("db", "upgrade"), at_old_revision(upgrade_rows)),
        Command("db seed --sample", ("db", "seed", "--sample"), initialised),
        Command(f"db import {import_rows:,} patients", ("db", "import", "patients", str(csv_path)), initialised, 2),
    ]


@dataclass(frozen=True)
class Row:
    """One kill and what it left."""

    command: str
    backend: str
    fraction: float  # of the clean run's write transaction, after it was seen open
    killed_at_s: float  # after the child started
    killed_while_writing: bool  # the probe saw the transaction still open just before the kill
    effect: str  # "none", "all" or "partial"
    rerun_ok: bool
    clean_s: float
    rerun_s: float
    rerun_error: str

    @property
    def consistent(self) -> bool:
        """Whether the kill left the whole command's effect or none of it."""
        return self.effect != "partial"

    def cells(self) -> tuple[str, ...]:
        """The row as table cells, in COLUMNS order."""
        where = "in its transaction" if self.killed_while_writing else "after its transaction"
        when = f"txn +{self.fraction:.0%} ({self.killed_at_s:.2f} s, {where})"
        yes = {True: "yes", False: "NO"}
        cells = (self.command, self.backend, when, self.effect, yes[self.consistent], yes[self.rerun_ok])
        return (*cells, f"{self.clean_s:.2f} / {self.rerun_s:.2f}")


def kill_matrix(command: Command, new_url: Callable[[], str], home: Path, fractions=KILL_AT) -> list[Row]:
    """Run `command` cleanly once, then kill it at each fraction of its write transaction; the rows."""
    reference = new_url()
    command.prepare(reference)
    clean = run_command(reference, command.args, home)
    if clean.returncode != 0 or clean.write_s is None:
        raise RuntimeError(f"clean `neurotriage {' '.join(command.args)}` failed: {clean.stderr.strip()}")
    after = read_state(reference)
    return [kill_once(command, new_url(), home, fraction, clean, after) for fraction in fractions]


def kill_once(command: Command, url: str, home: Path, fraction: float, clean: Run, after: State) -> Row:
    """Prepare `url`, kill `command` at `fraction` of the `clean` run's writing time into its write
    transaction, re-run it, and compare the database with its state before and `after` the clean run."""
    command.prepare(url)
    before = read_state(url)
    killed = run_command(url, command.args, home, kill_after_s=fraction * clean.write_s)
    left = read_state(url)
    effect = "none" if left == before else "all" if left == after else "partial"
    again = run_command(url, command.args, home)
    rerun_ok = again.returncode == (0 if effect == "none" else command.again_code) and read_state(url) == after
    return Row(
        command.name,
        make_url(url).get_backend_name(),
        fraction,
        round((killed.opened_s or 0) + fraction * clean.write_s, 3),
        killed.killed_while_writing,
        effect,
        rerun_ok,
        round(clean.seconds, 2),
        round(again.seconds, 2),
        "" if rerun_ok else f"exit {again.returncode}: {again.stderr.strip()[-300:]}",
    )


def _postgres_admin() -> tuple[str | None, str | None]:
    """The admin URL of the PostgreSQL server, or why there is none."""
    admin = next((os.environ[name] for name in PG_ENVS if os.environ.get(name)), None)
    if admin is None:
        return None, f"no {' / '.join(PG_ENVS)} set"
    try:
        engine = create_engine(admin, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means the same: no server to measure
        return None, f"PostgreSQL at {db.redact(admin)} unreachable: {str(exc).strip().splitlines()[0]}"
    return admin, None


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table."""
    cells = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells)


def run() -> dict:
    """The kill matrix on SQLite and, where a server answers, PostgreSQL."""
    admin, skipped = _postgres_admin()
    load_before = os.getloadavg()[0]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        matrix = commands(root, IMPORT_ROWS, UPGRADE_ROWS)
        for backend in ("sqlite", "postgresql"):
            if backend == "postgresql" and admin is None:
                continue
            databases = DatabaseFactory(backend, root, admin, prefix="nt_bench")
            try:
                for command in matrix:
                    rows += kill_matrix(command, databases.create, root / "home")
            finally:
                databases.drop_all()
    print(table(rows))
    return {
        "import_rows": IMPORT_ROWS,
        "upgrade_rows": UPGRADE_ROWS,
        "kill_at_fractions_of_write_transaction": list(KILL_AT),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "postgresql": skipped or "measured",
        "all_consistent": all(r.consistent for r in rows),
        "all_reruns_ok": all(r.rerun_ok for r in rows),
        "rows": [asdict(r) | {"consistent": r.consistent} for r in rows],
    }
