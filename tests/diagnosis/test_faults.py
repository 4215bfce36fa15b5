"""Faults while a diagnosis is stored: a kill -9, a full disk at the report folder, the database
refusing the finding, the PostgreSQL server restarted or stopped mid-run. Each ends with the
database and the report folders agreeing.

bench/bench_faults.py runs the whole matrix (every fault point, both backends); these are one small
case of each kind. The kill runs the real `neurotriage diagnose` (the shipped model) in a child
process; the server faults run a child with the oracle model (oracle_cli.py) against a throwaway
cluster; the others run in-process with the oracle model (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.bench_faults import Clinic, prepare_clinic, run_server_fault, stray_reports
from bench.pg_cluster import Cluster
from sqlalchemy import func, select, text

from neurotriage.cli import main
from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.faults import FAULT_ENV
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.maintenance.sweep import LOCK_NAME, report_key

ORACLE_CLI = Path(__file__).with_name("oracle_cli.py")
DISK_BYTES = 16 << 20  # room for one report (~3 MB) and its draft, not for a filler besides


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic enhancing tumour in the right frontal lobe."""
    case = generate_case(11, "SYN_RF", kind="enhancing", lobe="frontal_lobe", hemisphere="right")
    return write_case(case, tmp_path_factory.mktemp("cases"), BRATS2020)


@pytest.fixture
def patient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """A patient in a fresh SQLite database with the sample hospitals, in a fresh NEUROTRIAGE_HOME."""
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'nt.db'}")
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    assert main(["db", "init"]) == 0 and main(["db", "seed", "--sample"]) == 0
    with db.transaction() as session:
        found = intake.add_patient(session, "Fault Test", city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, found.id, "hemiparesis", side="left")
        return found.id


def finding_count() -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count(Finding.id)))


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if p.name != LOCK_NAME)


def diagnose_into(case_dir: Path, patient: int, out: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run `diagnose --json` in-process; returns the exit code and stderr."""
    code = main(["diagnose", str(case_dir), "--patient", str(patient), "--out", str(out), "--json"])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_a_kill_between_commit_and_move_is_completed_by_check(case_dir, patient, capsys) -> None:
    command = [sys.executable, "-m", "neurotriage", "diagnose", str(case_dir), "--patient", str(patient), "--json"]
    run = subprocess.run(command, env=os.environ | {FAULT_ENV: "committed"}, capture_output=True, timeout=900)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()[-2000:]
    with db.transaction() as session:
        finding = session.scalars(select(Finding)).one()  # committed before the kill
    folder = Path(finding.report_dir)
    assert not folder.exists() and len(hidden(folder.parent)) == 1  # its report still in the draft
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert f"into place as {folder}\n" in out and "consistent: 1 finding(s)" in out
    assert report_key(folder) == finding.key and hidden(folder.parent) == []


@pytest.mark.slow
def test_a_refused_finding_is_one_line_and_the_earlier_report_stays(case_dir, patient, oracle, tmp_path, capsys):
    out = tmp_path / "report"
    assert diagnose_into(case_dir, patient, out, capsys)[0] == 0
    earlier = report_key(out)
    with db.transaction() as session:
        session.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON findings BEGIN SELECT RAISE(ABORT, 'no'); END"))
    code, err = diagnose_into(case_dir, patient, out, capsys)
    assert (code, err.count("\n")) == (2, 1) and "constraint violated: no" in err
    assert finding_count() == 1 and report_key(out) == earlier and hidden(tmp_path) == []
    assert main(["check"]) == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_BYTES; skipped where it cannot be mounted (CI=true fails as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)], capture_output=True
    )
    if mount.returncode != 0:
        reason = f"cannot mount a tmpfs: {mount.stderr.decode().strip() or mount.returncode}"
        if os.environ.get("CI", "").lower() == "true" and os.geteuid() == 0:
            pytest.fail(f"CI=true as root, but {reason}")
        pytest.skip(reason)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path) -> None:
    """Take every free byte of `disk`."""
    with open(disk / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 16))
                f.flush()
        except OSError:
            pass


@pytest.mark.slow
def test_a_full_disk_at_the_report_folder_is_one_line_and_the_earlier_report_stays(
    case_dir, patient, oracle, small_disk, capsys
):
    out = small_disk / "report"
    assert diagnose_into(case_dir, patient, out, capsys)[0] == 0
    earlier = report_key(out)
    fill(small_disk)
    code, err = diagnose_into(case_dir, patient, out, capsys)
    assert (code, err.count("\n")) == (2, 1) and "No space left on device" in err, err
    assert finding_count() == 1 and report_key(out) == earlier and hidden(small_disk) == []
    assert json.loads((out / "report.json").read_text())["files"]


@pytest.fixture(scope="module")
def server_clinic(own_cluster: Cluster, case_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    """A migrated database with a patient on a throwaway cluster, diagnosed by the oracle CLI."""
    root = tmp_path_factory.mktemp("own-server")
    clinic = Clinic("postgresql-own", own_cluster.url, root, case_dir, program=(sys.executable, str(ORACLE_CLI)))
    prepare_clinic(clinic)
    return clinic


@pytest.mark.slow
def test_a_server_restarted_while_analysing_stores_the_finding(server_clinic: Clinic, own_cluster: Cluster):
    before = server_clinic.findings()
    run = run_server_fault(server_clinic, own_cluster, "server restarted while analysing")
    assert run.returncode == 0, run.stderr
    [(_, key, folder)] = server_clinic.findings()[len(before) :]
    assert json.loads(run.stdout)["finding_key"] == key and report_key(Path(folder)) == key
    assert server_clinic.cli("check").returncode == 0 and hidden(server_clinic.reports) == []


@pytest.mark.slow
def test_a_server_stopped_while_analysing_is_one_line_and_stores_nothing(server_clinic: Clinic, own_cluster: Cluster):
    before = server_clinic.findings()
    run = run_server_fault(server_clinic, own_cluster, "server stopped while analysing")
    assert (run.returncode, run.stderr.count("\n")) == (2, 1), run.stderr
    assert f"cannot reach database {own_cluster.url}: " in run.stderr and run.stdout == ""
    assert stray_reports(server_clinic) == [] and hidden(server_clinic.reports) == []
    assert server_clinic.cli("check").returncode == 0  # on the server started again
    assert server_clinic.findings() == before
