"""`neurotriage patient erase` and `study erase`: nothing of the patient is left in NEUROTRIAGE_HOME or the
database (SQLite's file and log bytes, every text column on PostgreSQL), the audit log keeps a tombstone,
a crash after the commit is finished by `check`, and bad requests are one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import event, func, inspect, select, text

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding, Patient, Review, Study, utcnow
from neurotriage.faults import FAULT_ENV
from neurotriage.files import owner_tag, write_json_atomic
from neurotriage.maintenance.journal import Journal, journal_folder, write_journal
from neurotriage.web.models import AuditEvent, Job

from .seed import KEPT, Identity, Seeded, add_finding, events_lines, seed_patient

WHO = Identity()
TEXT_TYPES = ("text", "varchar", "json", "jsonb", "date")  # where PostgreSQL could hold a name, MRN or birth date


@pytest.fixture
def fresh_db(fresh_url: str, home: Path) -> Iterator[str]:  # noqa: F811
    """A new migrated database whose SQLite connections leave deleted and replaced rows' bytes in the file,
    as SQLite builds without SECURE_DELETE do (Debian's overwrites them): the erasure must not rely on it."""
    db.migrate_and_load(fresh_url, create=True)
    engine = db.engine_for(fresh_url)
    if engine.dialect.name != "sqlite":
        yield fresh_url
        return

    def plain_delete(dbapi_connection, _record) -> None:
        dbapi_connection.execute("PRAGMA secure_delete = 0")

    event.listen(engine, "connect", plain_delete)
    engine.dispose()
    yield fresh_url
    event.remove(engine, "connect", plain_delete)
    engine.dispose()


def traces_on_disk(root: Path, needles: tuple[str, ...]) -> list[str]:
    """Every file under `root` whose name or bytes hold one of `needles`."""
    found = []
    for path in root.rglob("*"):
        data = path.name.encode() + (path.read_bytes() if path.is_file() and not path.is_symlink() else b"")
        found += [f"{path}: {n}" for n in needles if n.encode() in data]
    return found


def traces_in_database(url: str, needles: tuple[str, ...]) -> list[str]:
    """SQLite: the needles in the bytes of the database file and its logs. PostgreSQL: in any text, JSON or
    date column of any table."""
    engine = db.engine_for(url)
    if engine.dialect.name == "sqlite":
        path = Path(engine.url.database)
        files = [p for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-journal"))) if p.exists()]
        return [f"{p.name}: {n}" for p in files for n in needles if n.encode() in p.read_bytes()]
    found = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for column in inspect(conn).get_columns(table):
                if str(column["type"]).lower().split("(")[0] not in TEXT_TYPES:
                    continue
                for needle in needles:
                    query = text(f'SELECT count(*) FROM "{table}" WHERE CAST("{column["name"]}" AS text) ILIKE :n')
                    if conn.execute(query, {"n": f"%{needle}%"}).scalar():
                        found.append(f"{table}.{column['name']}: {needle}")
    return found


def count(url: str, model, *where) -> int:
    with db.transaction(url) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_erasing_a_patient_leaves_no_trace_but_a_tombstone(fresh_db: str, home: Path, cli) -> None:
    kept = seed_patient(fresh_db, KEPT)
    gone = seed_patient(fresh_db, WHO)
    assert traces_on_disk(home, WHO.needles) and traces_in_database(fresh_db, WHO.needles)  # the check can fail
    run = cli("patient", "erase", gone.patient_id, "--yes")
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == 1 and run.out.rstrip().endswith(" removed")
    assert run.out.startswith(f"erased patient {gone.patient_id}: 2 studies, 2 findings, 1 review, 1 job; ")
    assert traces_on_disk(home, WHO.needles) == []
    assert traces_in_database(fresh_db, WHO.needles) == []
    assert not list(journal_folder().glob("*.json"))
    with db.transaction(fresh_db) as session:
        stone = session.scalar(select(AuditEvent).where(AuditEvent.action == "erase"))
        assert (stone.target, stone.patient_id) == (f"patient:{gone.patient_id}", gone.patient_id)
        assert stone.username.startswith("cli:") and stone.at is not None
        counts = {k: stone.detail[k] for k in ("studies", "findings", "reviews", "jobs")}
        assert counts == {"studies": 2, "findings": 2, "reviews": 1, "jobs": 1}
        about = [
            f"patient:{gone.patient_id}",
            f"patient:{gone.patient_id}/job:{gone.job_id}",
            f"finding:{gone.findings[0]}",
        ]
        events = session.scalars(select(AuditEvent).where(AuditEvent.target.in_(about), AuditEvent.action != "erase"))
        assert [e.detail for e in events] == [None, None, None]  # who did what stays, what it was about goes
        searches = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.target == "patients").order_by(AuditEvent.id)
        )
        assert list(searches) == [{"search": KEPT.name.upper()}, None]
    assert_kept(fresh_db, kept)


def assert_kept(url: str, kept: Seeded) -> None:
    """The other patient's rows, files and event-log line are all still there."""
    assert count(url, Patient, Patient.id == kept.patient_id) == 1
    assert count(url, Finding, Finding.id.in_(kept.findings)) == 2
    assert count(url, Job, Job.id == kept.job_id) == 1
    assert all(p.exists() for folders in kept.folders.values() for p in folders)
    assert kept.study_uid in {line["detail"].split()[1] for line in events_lines()}


def test_erasing_a_study_leaves_the_other_study(url: str, home: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    run = cli("study", "erase", seeded.received, "--yes")
    assert run.code == 0, run.err
    assert run.out.startswith(f"erased study {seeded.received}: 1 study, 1 finding, 1 review, 0 jobs; ")
    assert not any(p.exists() for p in seeded.folders[seeded.received])
    assert all(p.exists() for p in seeded.folders[seeded.uploaded])
    assert events_lines() == []
    assert count(url, Study, Study.patient_id == seeded.patient_id) == 1
    assert count(url, Finding, Finding.id == seeded.findings[1]) == 1
    assert count(url, Review) == 0 and count(url, Job, Job.id == seeded.job_id) == 1
    assert count(url, AuditEvent, AuditEvent.action == "erase", AuditEvent.target == f"study:{seeded.received}") == 1


def test_outside_neurotriage_folders_only_its_own_reports_go(url: str, home: Path, tmp_path: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    own = tmp_path / "my-cases" / "BraTS-001"
    own.mkdir(parents=True)
    (own / "BraTS-001_t1.nii.gz").write_bytes(b"the user's own input")
    with db.transaction(url) as session:  # two diagnoses with `--out` outside NEUROTRIAGE_HOME
        add_finding(session, seeded.patient_id, str(own), tmp_path / "out" / "mine", WHO, generate_uid())
        add_finding(session, seeded.patient_id, str(own), tmp_path / "out" / "reused", WHO, generate_uid())
        study = session.scalar(select(Study.id).where(Study.case_ref == str(own)))
    write_json_atomic(tmp_path / "out" / "reused" / "report.json", {"finding_key": "of-another-finding"})
    assert cli("study", "erase", study, "--yes").code == 0
    assert own.is_dir() and count(url, Study, Study.id == study) == 0
    assert not (tmp_path / "out" / "mine").exists() and (tmp_path / "out" / "reused").is_dir()


def test_a_folder_another_patient_still_uses_stays(url: str, home: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    shared = seeded.folders[seeded.received][0]  # the received study, filed under a second patient too
    with db.transaction(url) as session:
        other = intake.add_patient(session, KEPT.name)
        intake.study_for(session, other.id, str(shared))
    assert cli("patient", "erase", seeded.patient_id, "--yes").code == 0
    assert shared.is_dir() and not seeded.folders[seeded.uploaded][0].exists()


def test_a_crash_after_the_commit_is_finished_by_check(url: str, home: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    command = [sys.executable, "-m", "neurotriage", "patient", "erase", str(seeded.patient_id), "--yes"]
    run = subprocess.run(command, env=os.environ | {FAULT_ENV: "erase-committed"}, capture_output=True, timeout=120)
    assert run.returncode == -9, run.stderr.decode()
    assert count(url, Patient, Patient.id == seeded.patient_id) == 0
    assert all(p.exists() for folders in seeded.folders.values() for p in folders)  # killed before any file went
    assert len(list(journal_folder().glob("*.json"))) == 1
    checked = cli("check")
    assert f"finished the erasure of patient:{seeded.patient_id}: " in checked.out
    assert not any(p.exists() for folders in seeded.folders.values() for p in folders)
    assert traces_on_disk(home, WHO.needles) == []


def test_a_journal_whose_transaction_never_committed_is_discarded(url: str, home: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    folders = seeded.folders[seeded.received]
    journal = Journal(token="0" * 32, target=f"patient:{seeded.patient_id}", paths=list(map(str, folders)),
                      study_uids=[seeded.study_uid])  # fmt: skip
    write_journal(journal)
    draft = journal_folder() / f".{'1' * 32}.{owner_tag()}_1.partial.json"  # a run killed while writing one
    draft.write_text('{"token": ')
    checked = cli("check")
    assert f"discarded the journal of an erasure of patient:{seeded.patient_id} that never committed" in checked.out
    assert all(p.exists() for p in folders) and len(events_lines()) == 1
    assert count(url, Patient, Patient.id == seeded.patient_id) == 1
    assert not list(journal_folder().glob("*.json"))


def test_refusals_are_one_line_and_change_nothing(url: str, home: Path, cli) -> None:
    seeded = seed_patient(url, WHO)
    for args, message in (
        (("patient", "erase", "999999", "--yes"), "patient 999999: no such patient"),
        (("study", "erase", "999999", "--yes"), "study 999999: no such study"),
        (("patient", "erase", seeded.patient_id), "confirmation in a terminal; pass --yes"),
    ):
        run = cli(*args)
        assert run.code == 2 and len(run.err.splitlines()) == 1 and message in run.err, run.err
    with db.transaction(url) as session:
        study = session.get(Study, seeded.received)
        study.claim_token, study.claimed_by, study.lease_until = "t", "host:1", utcnow() + timedelta(hours=1)
    run = cli("patient", "erase", seeded.patient_id, "--yes")
    assert run.code == 2 and len(run.err.splitlines()) == 1
    assert f"study {seeded.received} is being diagnosed by host:1 now" in run.err
    assert count(url, Patient, Patient.id == seeded.patient_id) == 1
    assert all(p.exists() for folders in seeded.folders.values() for p in folders)


class Terminal:
    """Standard input as a terminal."""

    def isatty(self) -> bool:
        return True


def test_in_a_terminal_it_asks_first_and_shows_whom(url: str, home: Path, cli, monkeypatch) -> None:
    seeded = seed_patient(url, WHO)
    monkeypatch.setattr("sys.stdin", Terminal())
    answers = iter(["no", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    declined = cli("patient", "erase", seeded.patient_id)
    assert declined.code == 1 and declined.out.splitlines()[-1] == "nothing erased"
    assert declined.out.startswith(f"Erase patient {seeded.patient_id} ({WHO.name}): 2 studies, 2 findings, ")
    assert count(url, Patient, Patient.id == seeded.patient_id) == 1
    accepted = cli("patient", "erase", seeded.patient_id)
    assert accepted.code == 0 and accepted.out.splitlines()[-1].startswith(f"erased patient {seeded.patient_id}: ")
    assert count(url, Patient, Patient.id == seeded.patient_id) == 0
