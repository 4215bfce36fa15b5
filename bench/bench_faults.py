"""Fault matrix for storing a diagnosis: after each fault, do the database and the report folders agree?

Every run is a real `neurotriage diagnose` (the shipped model) of one synthetic case in a child
process. The faults:

- kill -9 at each write step (NEUROTRIAGE_FAULT, see neurotriage.faults), once into a new
  finding-keyed folder (where "mid-move" is never reached: nothing is replaced) and once into a
  report folder that already holds a report (`--out` given again);
- a full disk at the report folder (a tmpfs; skipped where it cannot be mounted);
- the database refusing the finding: a trigger raising on INSERT INTO findings and, on PostgreSQL,
  a deferred one raising at COMMIT.

After each, `neurotriage check --json` runs (it sweeps first). A row is consistent when check finds
no problem, no hidden leftover remains, every finding's report names it, and a run that stored
nothing left the earlier report in place. SQLite always; PostgreSQL when
NEUROTRIAGE_TEST_DATABASE_URL answers (in a schema of its own, dropped afterwards).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.faults import FAULT_ENV, FAULT_POINTS
from neurotriage.maintenance.sweep import LOCK_NAME, report_key

PG_ENV = "NEUROTRIAGE_TEST_DATABASE_URL"
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception)\b")
DISK_BYTES = 16 << 20
STORED_FROM = FAULT_POINTS.index("committed")  # a kill from this point on leaves a stored finding
REFUSE = {
    "sqlite": ["CREATE TRIGGER refuse BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'findings refused'); END"],
    "postgresql": [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'findings refused'; END $$",
        "CREATE TRIGGER refuse BEFORE INSERT ON findings FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}
REFUSE_AT_COMMIT = [
    "CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON findings DEFERRABLE INITIALLY DEFERRED"
    " FOR EACH ROW EXECUTE FUNCTION refuse()"
]
ALLOW = {"sqlite": ["DROP TRIGGER refuse"], "postgresql": ["DROP TRIGGER refuse ON findings"]}


@dataclass
class Clinic:
    """One backend's database, home and patient, and the commands run against them."""

    backend: str
    url: str
    root: Path
    case: Path
    patient: int = 0

    @property
    def env(self) -> dict[str, str]:
        """The environment of a child process on this clinic."""
        return os.environ | {"NEUROTRIAGE_DATABASE_URL": self.url, "NEUROTRIAGE_HOME": str(self.root / "home")}

    def cli(self, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        """Run `neurotriage ARGS` in a child process, with the fault point set."""
        env = self.env | ({FAULT_ENV: fault} if fault else {})
        return subprocess.run([sys.executable, "-m", "neurotriage", *args], env=env, capture_output=True, text=True)

    def diagnose(self, out: Path | None = None, fault: str | None = None) -> subprocess.CompletedProcess:
        """`diagnose` the case for the patient, into `out` or the finding-keyed folder."""
        args = ["diagnose", str(self.case), "--patient", str(self.patient), "--json"]
        return self.cli(*args, *(["--out", str(out)] if out else []), fault=fault)

    def execute(self, statements: list[str]) -> None:
        """Run SQL statements in one transaction."""
        with db.transaction(self.url) as session:
            for statement in statements:
                session.execute(text(statement))

    def findings(self) -> list[tuple[int, str, str]]:
        """(id, key, report folder) of every finding, oldest first."""
        with db.transaction(self.url) as session:
            return list(session.execute(select(Finding.id, Finding.key, Finding.report_dir).order_by(Finding.id)))


def _outcome(run: subprocess.CompletedProcess) -> str:
    if run.returncode in (0, -signal.SIGKILL):
        return "killed" if run.returncode else "exit 0"
    lines = run.stderr.strip().splitlines()
    if "Traceback (most recent call last):" in run.stderr:  # the exception's own line, not SQLAlchemy's footer
        raised = next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)), lines[-1])
        return f"exit {run.returncode}, traceback: {raised[:90]}"
    last = lines[-1].removeprefix("neurotriage: error: ") if lines else ""
    last = last if len(last) <= 80 else "..." + last[-77:]
    return f"exit {run.returncode}: {last}" if len(lines) == 1 else f"exit {run.returncode}, {len(lines)} lines: {last}"


def _hidden(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.name != LOCK_NAME] if folder.is_dir() else []


def _judge(clinic: Clinic, scenario: str, run, before, out: Path | None, earlier: str | None) -> dict:
    """Check the clinic after one faulty run: the table's row."""
    check = clinic.cli("check", "--json")
    result = json.loads(check.stdout) if check.stdout.strip() else {"problems": ["check failed"], "sweep": {}}
    after = clinic.findings()
    added = after[len(before) :]
    agree = all(report_key(Path(folder)) == key for _, key, folder in added)
    if out is not None and not added:
        agree = agree and report_key(out) == earlier  # the earlier report is untouched
    leftovers = _hidden(clinic.root / "home" / "reports") + _hidden(clinic.root / "out")
    swept = result["sweep"]
    return {
        "backend": clinic.backend,
        "scenario": scenario,
        "outcome": _outcome(run),
        "findings_added": len(added),
        "check_exit": check.returncode,
        "swept": f"{len(swept.get('removed', []))} removed, {len(swept.get('moved', []))} moved",
        "consistent": check.returncode == 0 and not result["problems"] and agree and not leftovers,
    }


def _kill_rows(clinic: Clinic) -> Iterator[dict]:
    """kill -9 at each point: into new finding-keyed folders, then into a report folder given again."""
    for point in FAULT_POINTS:
        if point != "mid-move":  # a new folder replaces nothing, so it never gets there
            before = clinic.findings()
            yield _judge(clinic, f"kill at {point}", clinic.diagnose(fault=point), before, None, None)
    out = clinic.root / "out" / "report"
    clinic.diagnose(out)
    for point in FAULT_POINTS:
        before, earlier = clinic.findings(), report_key(out)
        run = clinic.diagnose(out, fault=point)
        yield _judge(clinic, f"kill at {point}, replacing", run, before, out, earlier)


def _refused_rows(clinic: Clinic) -> Iterator[dict]:
    """The database refusing the finding at INSERT, and on PostgreSQL at COMMIT, over an earlier report."""
    out = clinic.root / "out" / "report"
    refusals = [("refused at INSERT", REFUSE[clinic.backend])]
    if clinic.backend == "postgresql":
        refusals.append(("refused at COMMIT", [*REFUSE["postgresql"][:1], *REFUSE_AT_COMMIT]))
    for scenario, statements in refusals:
        clinic.execute(statements)
        before, earlier = clinic.findings(), report_key(out)
        try:
            yield _judge(clinic, scenario, clinic.diagnose(out), before, out, earlier)
        finally:
            clinic.execute(
                ["DROP TRIGGER refuse_commit ON findings"] if "COMMIT" in scenario else ALLOW[clinic.backend]
            )
            if clinic.backend == "postgresql":
                clinic.execute(["DROP FUNCTION refuse()"])


@contextmanager
def _small_disk(folder: Path) -> Iterator[str | None]:
    """Mount a tmpfs of DISK_BYTES at `folder`; yields None, or why it could not be mounted."""
    folder.mkdir(parents=True)
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode != 0:
        yield mount.stderr.strip() or f"mount exited {mount.returncode}"
        return
    try:
        yield None
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def _full_disk_rows(clinic: Clinic) -> Iterator[dict]:
    """A full disk at the report folder, over an earlier report there."""
    disk = clinic.root / "out" / "disk"
    with _small_disk(disk) as problem:
        if problem:
            print(f"full disk: skipped ({problem})")
            return
        out = disk / "report"
        clinic.diagnose(out)
        with open(disk / "filler", "wb") as filler:
            try:
                while filler.write(b"\0" * (1 << 16)):
                    filler.flush()
            except OSError:
                pass  # the disk is full
        before, earlier = clinic.findings(), report_key(out)
        yield _judge(clinic, "full disk at the report folder", clinic.diagnose(out), before, out, earlier)


@contextmanager
def _clinic(backend: str, root: Path, case: Path) -> Iterator[Clinic | None]:
    """A migrated, seeded database with one patient (None when the backend is not reachable)."""
    url, schema, admin = f"sqlite:///{root / 'nt.db'}", None, os.environ.get(PG_ENV)
    if backend == "postgresql":
        if not admin:
            print(f"postgresql: skipped ({PG_ENV} is not set)")
            yield None
            return
        schema = f"nt_faults_{uuid.uuid4().hex[:8]}"
        _admin_sql(admin, f'CREATE SCHEMA "{schema}"')
        url = make_url(admin).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(False)
    clinic = Clinic(backend, url, root, case)
    try:
        for args in (["db", "init"], ["db", "seed", "--sample"]):
            clinic.cli(*args).check_returncode()
        with db.transaction(url) as session:
            patient = intake.add_patient(session, "Fault Bench", city="Leeds", lat="53.80", lon="-1.55")
            intake.add_symptom(session, patient.id, "hemiparesis", side="left")
            clinic.patient = patient.id
        yield clinic
    finally:
        db.dispose_engines()
        if schema:
            _admin_sql(admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _admin_sql(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


def _table(rows: list[dict]) -> str:
    columns = ("backend", "scenario", "outcome", "findings_added", "swept", "consistent")
    cells = [columns, *([str(row[c]) if c != "consistent" else "yes" if row[c] else "NO" for c in columns]
                        for row in rows)]  # fmt: skip
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in cells)


def run() -> dict:
    """Run the fault matrix on SQLite (and PostgreSQL when configured); print and return its table."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = Path(tmp) / "cases"
        subprocess.run([sys.executable, "-m", "neurotriage", "synth", str(cases), "--n", "1", "--seed", "7"],
                       check=True, capture_output=True)  # fmt: skip
        case = next(p for p in cases.iterdir() if p.is_dir())
        for backend in ("sqlite", "postgresql"):
            root = Path(tmp) / backend
            root.mkdir()
            with _clinic(backend, root, case) as clinic:
                if clinic is None:
                    continue
                rows += [*_kill_rows(clinic), *_refused_rows(clinic)]
                if backend == "sqlite":  # the report folder's disk does not depend on the database
                    rows += list(_full_disk_rows(clinic))
    print(_table(rows))
    return {"rows": rows, "consistent": sum(r["consistent"] for r in rows), "scenarios": len(rows)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
