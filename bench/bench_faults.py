"""Fault matrix for storing a diagnosis: after each fault, do the database and the report folders agree?

Every run is a real `neurotriage diagnose` (the shipped model) of one synthetic case in a child
process. The faults:

- kill -9 at each write step (NEUROTRIAGE_FAULT, see neurotriage.faults), once into a new
  finding-keyed folder (where "mid-move" is never reached: nothing is replaced) and once into a
  report folder that already holds a report (`--out` given again);
- a full disk at the report folder (a tmpfs; skipped where it cannot be mounted);
- the database refusing the finding: a trigger raising on INSERT INTO findings and, on PostgreSQL,
  a deferred one raising at COMMIT;
- the PostgreSQL server restarted or stopped while `diagnose` analyses, and stopped in the storing
  transaction, on a throwaway cluster of the bench's own (bench/pg_cluster.py; skipped without the
  server binaries). The run waits at a pause point (NEUROTRIAGE_PAUSE) while the server changes, and
  a stopped server is started again before the check.

After each, `neurotriage check --json` runs (it sweeps first). A row is consistent when check finds
no problem, no hidden leftover remains, every finding's report names it, no report folder is
without a finding, and a run that stored nothing left the earlier report in place. SQLite always; PostgreSQL when
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
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from bench import pg_cluster
from bench.pg_cluster import Cluster
from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.faults import FAULT_ENV, FAULT_POINTS, PAUSE_ENV, paused_marker
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
# scenario: (the pause point, what is done to the server while the run waits there)
SERVER_FAULTS: dict[str, tuple[str, Callable[[Cluster], None]]] = {
    "server restarted while analysing": ("analysing", Cluster.restart),
    "server stopped while analysing": ("analysing", Cluster.stop),
    "server stopped in the storing transaction": ("storing", Cluster.stop),
}
PAUSE_TIMEOUT_S = 120  # for a run to reach its pause point
RUN_TIMEOUT_S = 900


@dataclass
class Clinic:
    """One backend's database, home and patient, and the commands run against them."""

    backend: str
    url: str
    root: Path
    case: Path
    patient: int = 0
    program: tuple[str, ...] = (sys.executable, "-m", "neurotriage")  # tests run the CLI with the oracle model

    @property
    def env(self) -> dict[str, str]:
        """The environment of a child process on this clinic."""
        return os.environ | {"NEUROTRIAGE_DATABASE_URL": self.url, "NEUROTRIAGE_HOME": str(self.root / "home")}

    @property
    def reports(self) -> Path:
        """Where the finding-keyed report folders live."""
        return self.root / "home" / "reports"

    def start(self, *args: str, hooks: dict[str, str] | None = None) -> subprocess.Popen:
        """Start `neurotriage ARGS` in a child process, with the fault hooks' variables set."""
        env = self.env | (hooks or {})
        return subprocess.Popen([*self.program, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip

    def cli(self, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
        """Run `neurotriage ARGS` in a child process, with the fault point set."""
        return _finish(self.start(*args, hooks={FAULT_ENV: fault} if fault else None))

    def diagnose_args(self, out: Path | None = None) -> list[str]:
        """The arguments of `diagnose` of the case for the patient, into `out` or the finding-keyed folder."""
        args = ["diagnose", str(self.case), "--patient", str(self.patient), "--json"]
        return [*args, *(["--out", str(out)] if out else [])]

    def diagnose(self, out: Path | None = None, fault: str | None = None) -> subprocess.CompletedProcess:
        """`diagnose` the case for the patient, into `out` or the finding-keyed folder."""
        return self.cli(*self.diagnose_args(out), fault=fault)

    def execute(self, statements: list[str]) -> None:
        """Run SQL statements in one transaction."""
        with db.transaction(self.url) as session:
            for statement in statements:
                session.execute(text(statement))

    def findings(self) -> list[tuple[int, str, str]]:
        """(id, key, report folder) of every finding, oldest first."""
        with db.transaction(self.url) as session:
            return list(session.execute(select(Finding.id, Finding.key, Finding.report_dir).order_by(Finding.id)))


def _finish(process: subprocess.Popen) -> subprocess.CompletedProcess:
    """Wait for a child process; killed with its pipes closed should it outlast RUN_TIMEOUT_S."""
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        _reap(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _reap(process: subprocess.Popen) -> None:
    """Kill a child process that still runs, and wait for it."""
    if process.poll() is None:
        process.kill()
        process.communicate()


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


def stray_reports(clinic: Clinic) -> list[Path]:
    """Finding-keyed report folders that no stored finding names."""
    named = {Path(folder) for _, _, folder in clinic.findings()}
    return [p for p in clinic.reports.glob("patient-*/finding-*") if p not in named]


def _judge(clinic: Clinic, scenario: str, run, before, out: Path | None, earlier: str | None) -> dict:
    """Check the clinic after one faulty run: the table's row."""
    check = clinic.cli("check", "--json")
    result = json.loads(check.stdout) if check.stdout.strip() else {"problems": ["check failed"], "sweep": {}}
    after = clinic.findings()
    added = after[len(before) :]
    agree = all(report_key(Path(folder)) == key for _, key, folder in added)
    if out is not None and not added:
        agree = agree and report_key(out) == earlier  # the earlier report is untouched
    leftovers = _hidden(clinic.reports) + _hidden(clinic.root / "out") + stray_reports(clinic)
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


def run_server_fault(clinic: Clinic, cluster: Cluster, scenario: str) -> subprocess.CompletedProcess:
    """`diagnose`, paused at the scenario's point while the server is restarted or stopped, then let go;
    a stopped server is started again once the run has ended."""
    point, change = SERVER_FAULTS[scenario]
    release = clinic.root / f"release-{uuid.uuid4().hex[:8]}"
    process = clinic.start(*clinic.diagnose_args(), hooks={PAUSE_ENV: f"{point}:{release}"})
    try:
        _wait_for_pause(process, release)
        change(cluster)
        release.touch()
        return _finish(process)
    finally:
        _reap(process)
        if not cluster.running:
            cluster.start()


def _wait_for_pause(process: subprocess.Popen, release: Path) -> None:
    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    while not paused_marker(release).exists():
        if process.poll() is not None:
            raise RuntimeError(f"the run ended before its pause point: {process.communicate()[1][-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not reach its pause point within {PAUSE_TIMEOUT_S} s")
        time.sleep(0.05)


def _server_rows(root: Path, case: Path) -> Iterator[dict]:
    """The server faults, on a cluster of the bench's own with one patient."""
    binaries = pg_cluster.server_binaries()
    if binaries is None:
        print(f"postgresql-own: skipped ({pg_cluster.MISSING})")
        return
    with pg_cluster.own_cluster(binaries) as cluster:
        clinic = Clinic("postgresql-own", cluster.url, root, case)
        prepare_clinic(clinic)
        for scenario in SERVER_FAULTS:
            before = clinic.findings()
            yield _judge(clinic, scenario, run_server_fault(clinic, cluster, scenario), before, None, None)


def prepare_clinic(clinic: Clinic) -> None:
    """Migrate and seed the clinic's database and add its patient."""
    for args in (["db", "init"], ["db", "seed", "--sample"]):
        clinic.cli(*args).check_returncode()
    with db.transaction(clinic.url) as session:
        patient = intake.add_patient(session, "Fault Bench", city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, patient.id, "hemiparesis", side="left")
        clinic.patient = patient.id


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
        prepare_clinic(clinic)
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
    """Run the fault matrix on SQLite (PostgreSQL when configured, and an own cluster when it can be made);
    print and return its table."""
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
        root = Path(tmp) / "postgresql-own"
        root.mkdir()
        rows += list(_server_rows(root, case))
    print(_table(rows))
    return {"rows": rows, "consistent": sum(r["consistent"] for r in rows), "scenarios": len(rows)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
