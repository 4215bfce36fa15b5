"""`neurotriage backup` and `restore`, on SQLite and PostgreSQL: a diagnosed installation lost and rebuilt,
reports matched to the snapshot, and the archives and targets a restore refuses."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import tarfile
import time
from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text

from neurotriage.clinical import db, intake, sample
from neurotriage.clinical.models import Patient
from neurotriage.diagnosis import pipeline
from neurotriage.files import partial_dir
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.maintenance import backup as backup_module
from neurotriage.maintenance.backup import backup
from neurotriage.maintenance.check import check
from neurotriage.maintenance.restore import restore
from neurotriage.web.auth import add_user
from neurotriage.web.settings import load_web_settings

from ..web.helpers import PASSWORD, make_client, sign_in
from .helpers import Installation, add_finding, write_report


@pytest.fixture(scope="module")
def right_frontal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic enhancing tumour in the right frontal lobe."""
    case = generate_case(11, "SYN_RF", kind="enhancing", lobe="frontal_lobe", hemisphere="right")
    return write_case(case, tmp_path_factory.mktemp("cases"), BRATS2020)


def web_view(install: Installation, patient_id: int) -> tuple[dict, list[int]]:
    """The patient as the web app's API shows them, and the status of each finding's report page."""
    with make_client(load_web_settings(secret_key="test-secret", job_workers=0)) as client:
        assert sign_in(client).status_code == 200
        patient = client.get(f"/api/patients/{patient_id}").json()
        pages = [client.get(f"/reports/{f['finding_id']}/report.html").status_code for f in patient["findings"]]
    return patient, pages


@pytest.mark.slow
def test_a_diagnosed_installation_lost_and_restored_shows_the_same_findings_and_reports(
    install: Installation, oracle, right_frontal: Path, tmp_path: Path, cli
) -> None:
    with db.transaction(install.url) as session:
        sample.seed_sample(session, n_patients=0)
        add_user(session, "clin", PASSWORD, "admin")  # sees every patient: none has a care team here
        patient = intake.add_patient(session, "Ada Lovelace", city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, patient.id, "hemiparesis", side="left")
    for study in ("study-1", "study-2"):
        pipeline.diagnose(right_frontal, patient.id, pipeline.DiagnoseOptions(url=install.url), case_ref=study)
    before, pages = web_view(install, patient.id)
    assert len(before["findings"]) == 2 and pages == [200, 200]
    hashes = install.file_hashes()
    assert sum(name.startswith("reports/") for name in hashes) >= 8

    archive = tmp_path / "backups" / "nt.tar"
    archive.parent.mkdir()
    run = cli("backup", archive)
    assert run.code == 0, run.err
    kind = install.url.split(":")[0].split("+")[0]
    assert run.out.startswith(f"backed up the {kind} database (schema revision {db.head_revision()})")
    assert f" and {len(hashes)} file(s), " in run.out and run.out.count("\n") == 1
    assert archive.stat().st_mode & 0o777 == 0o600

    install.destroy()
    run = cli("restore", archive)
    assert run.code == 0, run.err
    assert run.out.startswith(f"restored the {kind} database") and f" and {len(hashes)} file(s), " in run.out
    assert install.file_hashes() == hashes
    after, pages = web_view(install, patient.id)
    assert after == before and pages == [200, 200]
    assert check(install.url).ok


def test_a_committed_report_still_in_its_draft_is_archived_in_its_place(install: Installation, tmp_path) -> None:
    folder = install.home / "reports" / "patient-1" / "finding-a"
    key = add_finding(install.url, folder)
    write_report(partial_dir(folder), key)  # committed, not yet moved into place
    archive = tmp_path / "nt.tar"
    backup(archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "home/reports/patient-1/finding-a/report.json" in names
    assert not any(".partial" in name for name in names)
    install.destroy()
    restore(archive)
    assert json.loads((folder / "report.json").read_text())["finding_key"] == key
    assert check(install.url).ok


def test_a_draft_that_moves_into_place_while_it_is_read_is_read_from_its_place(
    install: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = install.home / "reports" / "patient-1" / "finding-a"
    key = add_finding(install.url, folder)
    draft = write_report(partial_dir(folder), key)
    real = backup_module._plan

    def plan_then_settle(*args):
        planned = real(*args)
        draft.rename(folder)  # as `Draft.settle` does once the finding is committed
        return planned

    monkeypatch.setattr(backup_module, "_plan", plan_then_settle)
    archive = tmp_path / "nt.tar"
    assert backup(archive).vanished == 0
    with tarfile.open(archive) as tar:
        assert json.loads(tar.extractfile("home/reports/patient-1/finding-a/report.json").read())["finding_key"] == key


def test_a_report_of_a_finding_committed_after_the_snapshot_is_left_out(
    install: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    earlier = install.home / "reports" / "patient-1" / "finding-a"
    write_report(earlier, add_finding(install.url, earlier))
    later = install.home / "reports" / "patient-2" / "finding-b"
    orphan = write_report(install.home / "reports" / "patient-3" / "finding-c", "no-such-finding")
    real = backup_module.take_snapshot

    def snapshot_then_diagnose(url, folder):
        taken = real(url, folder)
        write_report(later, add_finding(url, later))  # a diagnosis lands while the files are read
        return taken

    monkeypatch.setattr(backup_module, "take_snapshot", snapshot_then_diagnose)
    archive = tmp_path / "nt.tar"
    backup(archive)
    install.destroy()
    restore(archive)
    assert (earlier / "report.json").is_file() and (orphan / "report.json").is_file()
    assert not later.exists()
    assert [p.kind for p in check(install.url).problems] == ["report of no finding"]  # the orphan, as before


def test_a_held_write_transaction_neither_stops_the_sqlite_snapshot_nor_enters_it(
    sqlite_install: Installation, tmp_path: Path
) -> None:
    install = sqlite_install
    with db.transaction(install.url) as session:
        intake.add_patient(session, "Committed Before")
    with closing(sqlite3.connect(db.sqlite_file(install.url), isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        columns = "name, sex, language_dominance, created_at"
        writer.execute(f"INSERT INTO patients ({columns}) VALUES ('Uncommitted', 'unknown', 'left', '2026-01-01')")
        started = time.perf_counter()
        backup(tmp_path / "nt.tar")
        assert time.perf_counter() - started < db.BUSY_TIMEOUT_S / 3  # it did not wait for the writer
        writer.execute("COMMIT")
    with tarfile.open(tmp_path / "nt.tar") as tar:
        tar.extract("database/neurotriage.db", tmp_path, filter="data")
    with closing(sqlite3.connect(tmp_path / "database" / "neurotriage.db")) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT name FROM patients").fetchall() == [("Committed Before",)]
    with db.transaction(install.url) as session:
        assert session.scalar(select(func.count(Patient.id))) == 2  # the writer's commit went through


def test_the_default_sqlite_database_inside_home_comes_back_with_the_files(tmp_path, monkeypatch, cli) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(home))
    monkeypatch.delenv("NEUROTRIAGE_DATABASE_URL", raising=False)
    assert cli("db", "init").code == 0
    assert cli("patient", "add", "--name", "Home Grown").code == 0
    (home / "dicom").mkdir()
    (home / "dicom" / "events.jsonl").write_text('{"kind": "rejected"}\n')
    assert cli("backup", tmp_path / "nt.tar").code == 0
    db.dispose_engines()
    shutil.rmtree(home)
    run = cli("restore", tmp_path / "nt.tar")
    assert run.code == 0, run.err
    assert (home / "dicom" / "events.jsonl").read_text() == '{"kind": "rejected"}\n'
    assert "Home Grown" in cli("patient", "list").out


def test_an_archive_of_an_older_schema_is_upgraded_once_restored(
    fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    install = Installation(fresh_url, tmp_path / "home")
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(install.home))
    with db.connection(fresh_url, create=True) as conn:
        command.upgrade(db.alembic_config(conn), "0010")
        conn.execute(text("INSERT INTO patients (name, sex, language_dominance, created_at, mrn)"
                          " VALUES ('Older', 'unknown', 'left', '2026-01-01', 'M1')"))  # fmt: skip
    assert cli("backup", tmp_path / "nt.tar").code == 0
    install.destroy()
    run = cli("restore", tmp_path / "nt.tar")
    assert run.code == 0 and f"(schema revision {db.head_revision()}, upgraded from 0010)" in run.out, run.err
    with db.transaction(fresh_url) as session:
        assert [p.name for p in intake.list_patients(session, None)] == ["Older"]


def test_restore_refuses_an_installation_that_holds_data(install: Installation, tmp_path: Path, cli) -> None:
    note = install.home / "cases" / "note.txt"
    note.parent.mkdir(parents=True)
    note.write_text("x")
    archive = tmp_path / "nt.tar"
    assert cli("backup", archive).code == 0
    run = cli("restore", archive)
    assert run.code == 2 and run.err.count("\n") == 1 and "restore needs an empty database" in run.err
    install.destroy()
    note.parent.mkdir(parents=True)
    note.write_text("someone else's")
    run = cli("restore", archive)
    assert run.code == 2 and run.err.count("\n") == 1
    assert f"holds data ({note})" in run.err
    assert install.tables() == 0 and note.read_text() == "someone else's"


def flip_a_byte(archive: Path, member: str) -> None:
    """Change one byte of a member's data, leaving the tar itself readable."""
    with tarfile.open(archive) as tar:
        offset = tar.getmember(member).offset_data
    with open(archive, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_restore_refuses_a_damaged_archive_and_writes_nothing(install: Installation, tmp_path: Path, cli) -> None:
    folder = install.home / "reports" / "patient-1" / "finding-a"
    write_report(folder, add_finding(install.url, folder))
    archive = tmp_path / "nt.tar"
    assert cli("backup", archive).code == 0
    install.destroy()
    member = "home/reports/patient-1/finding-a/report.html"
    flip_a_byte(archive, member)
    run = cli("restore", archive)
    assert run.code == 2 and run.err.count("\n") == 1
    assert f"{member} is damaged" in run.err
    assert install.tables() == 0
    assert [p for p in install.home.rglob("*") if not p.is_dir()] == []


def rewrite_manifest(archive: Path, **changes) -> None:
    """Rewrite the archive with its manifest changed (as a newer neurotriage might have written it)."""
    with tarfile.open(archive) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    with tarfile.open(archive, "w") as tar:
        for info, data in members:
            if info.name == "manifest.json":
                data = json.dumps(json.loads(data) | changes).encode()
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_restore_refuses_a_newer_schema_another_home_and_a_path_outside(
    install: Installation, tmp_path: Path, cli
) -> None:
    archive = tmp_path / "nt.tar"
    assert cli("backup", archive).code == 0
    install.destroy()
    rewrite_manifest(archive, revision="9999_from_the_future")
    run = cli("restore", archive)
    assert run.code == 2 and run.err.count("\n") == 1 and "'9999_from_the_future'" in run.err
    rewrite_manifest(archive, revision=db.head_revision(), home="/somewhere/else")
    run = cli("restore", archive)
    assert run.code == 2 and "NEUROTRIAGE_HOME=/somewhere/else" in run.err
    rewrite_manifest(archive, home=str(install.home), files=[{"path": "../etc/passwd", "sha256": "0", "size": 1}])
    run = cli("restore", archive)
    assert run.code == 2 and "'../etc/passwd', outside the archive's folders" in run.err
    assert install.tables() == 0


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    not_a_tar = tmp_path / "notes.tar"
    not_a_tar.write_text("hello")
    plain_tar = tmp_path / "plain.tar"
    with tarfile.open(plain_tar, "w") as tar:
        tar.add(not_a_tar, "notes.txt")
    cases = {
        ("backup", tmp_path): "is a folder",
        ("backup", tmp_path / "nt.tar"): "does not exist",
        ("restore", tmp_path / "missing.tar"): "no such file",
        ("restore", not_a_tar): "not a readable backup archive",
        ("restore", plain_tar): "not a neurotriage backup",
    }
    for args, message in cases.items():
        run = cli(*args)
        assert run.code == 2 and run.err.count("\n") == 1 and message in run.err, (args, run.err)
    assert not (tmp_path / "nt.tar").exists()


def test_a_missing_pg_dump_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neurotriage.errors import UserError
    from neurotriage.maintenance import pg_tools

    monkeypatch.setattr(pg_tools, "DEBIAN_PROGRAMS", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="pg_dump of PostgreSQL 15 or newer is not installed"):
        pg_tools.client_program("pg_dump", 15)


def test_a_backup_into_a_missing_folder_is_one_line(sqlite_install: Installation, tmp_path: Path, cli) -> None:
    run = cli("backup", tmp_path / "no" / "such" / "nt.tar")
    assert run.code == 2 and "no such folder" in run.err and run.err.count("\n") == 1
    assert not (tmp_path / "no").exists()
