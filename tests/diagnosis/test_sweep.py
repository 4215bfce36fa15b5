"""The sweep and `neurotriage check`: leftovers of dead processes go, live ones stay, and the
findings and report folders are compared both ways."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from neurotriage.cli import main
from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.files import owner_tag, partial_dir
from neurotriage.maintenance.check import check
from neurotriage.maintenance.sweep import sweep


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised NEUROTRIAGE_HOME with its SQLite database."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'nt.db'}")
    assert main(["db", "init"]) == 0
    return tmp_path / "home"


def dead_owner(host: str | None = None) -> str:
    """An owner tag of this host (or `host`) whose process has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    this_host, _pid, start = owner_tag().rsplit("_", 2)
    return f"{host or this_host}_{child.pid}_{start}"


def write_report(folder: Path, key: str, files: tuple[str, ...] = ("report.html",)) -> Path:
    """A minimal report folder naming finding `key`."""
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("x")
    (folder / "report.json").write_text(json.dumps({"finding_key": key, "files": list(files)}))
    return folder


def add_finding(folder: Path, key: str | None = None) -> tuple[int, str]:
    """A stored finding whose report folder is `folder`; returns its id and key."""
    key = key or str(uuid.uuid4())
    with db.transaction() as session:
        patient = intake.add_patient(session, "Sweep Test")
        study = intake.study_for(session, patient.id, f"case-{key}")
        finding = Finding(study_id=study.id, locate={}, model_id="test", key=key, report_dir=str(folder))
        session.add(finding)
        session.flush()
        return finding.id, key


def test_dead_drafts_go_live_and_foreign_ones_stay(home: Path) -> None:
    patient = home / "reports" / "patient-1"
    dead = write_report(patient / f".finding-a.{dead_owner()}_x1.partial", "a")  # never committed
    dead_file = patient / f".note.{dead_owner()}_12.partial.json"
    dead_file.write_text("{}")
    live = partial_dir(patient / "finding-b")
    elsewhere = write_report(patient / f".finding-c.{dead_owner('other-host')}_x1.partial", "c")
    unknown = write_report(patient / ".finding-d.k2j4.partial", "d")  # no owner in the name
    result = sweep()
    assert sorted(result.removed) == sorted([str(dead), str(dead_file)])
    assert sorted(result.in_use) == sorted([str(live), str(elsewhere)])
    assert result.unknown == [str(unknown)] and result.moved == []
    assert not dead.exists() and not dead_file.exists() and live.is_dir() and elsewhere.is_dir()


def test_a_committed_draft_moves_into_place_and_the_report_it_replaces_goes(home: Path) -> None:
    folder = home / "reports" / "patient-1" / "shared"  # a report folder given to two diagnoses
    owner = dead_owner()
    _, earlier = add_finding(folder)
    old = write_report(folder.with_name(f".shared.old-{owner}_0123abcd"), earlier)  # killed mid-move
    _, later = add_finding(folder)
    draft = write_report(folder.with_name(f".shared.{owner}_x1.partial"), later)
    result = sweep()
    assert [(m.path, m.target) for m in result.moved] == [(str(draft), str(folder))]
    assert result.removed == [str(old)]
    assert json.loads((folder / "report.json").read_text())["finding_key"] == later
    assert check().ok


def test_a_set_aside_report_comes_back_when_nothing_took_its_place(home: Path) -> None:
    folder = home / "web" / "jobs" / "3" / "report"
    _, key = add_finding(folder)
    old = write_report(folder.with_name(f".report.old-{dead_owner()}_0123abcd"), key)
    assert [m.target for m in sweep().moved] == [str(folder)]
    assert not old.exists() and (folder / "report.json").is_file()


def test_a_draft_never_replaces_the_report_of_a_later_finding(home: Path) -> None:
    folder = home / "reports" / "patient-1" / "shared"
    _, earlier = add_finding(folder)
    draft = write_report(folder.with_name(f".shared.{dead_owner()}_x1.partial"), earlier)
    _, later = add_finding(folder)
    write_report(folder, later)
    assert sweep().removed == [str(draft)]
    assert json.loads((folder / "report.json").read_text())["finding_key"] == later


def test_check_names_each_disagreement_and_exits_1(home: Path, capsys: pytest.CaptureFixture) -> None:
    reports = home / "reports" / "patient-1"
    complete, _ = add_finding(write_report(reports / "finding-a", "a"), "a")
    gone, _ = add_finding(reports / "finding-b", "b")
    lacking, _ = add_finding(write_report(reports / "finding-c", "c", ("report.html", "seg.nii.gz")), "c")
    (reports / "finding-c" / "seg.nii.gz").unlink()
    write_report(reports / "finding-z", "z")  # no such finding
    leftover = write_report(reports / f".finding-y.{dead_owner()}_x1.partial", "y")
    assert main(["check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"removed leftover {leftover}"
    assert lines[1].startswith(f"finding {gone} (patient ") and lines[1].endswith("finding-b is missing")
    assert lines[2].startswith(f"finding {lacking} (") and lines[2].endswith("finding-c lacks seg.nii.gz")
    assert lines[3] == f"report folder {reports / 'finding-z'} belongs to no finding"
    assert lines[4].startswith("3 problem(s): 3 finding(s) with reports, 3 report folder(s); 1 leftover(s) removed")
    assert len(lines) == 5 and complete
    assert main(["check", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in result["problems"]] == ["missing report", "incomplete report", "report of no finding"]
    assert result["sweep"]["removed"] == []  # the first check removed it


def test_check_sweeps_beside_report_folders_outside_the_roots(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "chosen" / "report"  # a report folder the user chose
    key = str(uuid.uuid4())
    add_finding(write_report(folder, key), key)
    draft = write_report(folder.with_name(f".report.{dead_owner()}_x1.partial"), "never stored")
    result = check()
    assert result.ok and result.sweep.removed == [str(draft)]


def test_check_of_agreeing_folders_exits_0(home: Path, capsys: pytest.CaptureFixture) -> None:
    add_finding(write_report(home / "reports" / "patient-1" / "finding-a", "a"), "a")
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith("consistent: 1 finding(s) with reports, 1 report folder(s)")


def test_diagnose_and_serve_sweep_at_start_up(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from fastapi.testclient import TestClient

    from neurotriage.web.app import create_app
    from neurotriage.web.settings import load_web_settings

    report = write_report(home / "reports" / "patient-1" / f".finding-a.{dead_owner()}_x1.partial", "a")
    job = write_report(home / "web" / "jobs" / "1" / f".report.{dead_owner()}_x1.partial", "b")
    chosen = write_report(tmp_path / "chosen" / f".report.{dead_owner()}_x1.partial", "c")
    args = ["diagnose", str(tmp_path / "missing"), "--patient", "1", "--out", str(tmp_path / "chosen" / "report")]
    assert main(args) == 2  # it sweeps before it looks at the case
    assert not report.exists() and not job.exists() and not chosen.exists()
    case = home / "cases" / f".SYN_0001.{dead_owner()}_x1.partial"
    case.mkdir(parents=True)
    assert main(["worker", "--lease", "0"]) == 2  # it sweeps once its options are checked
    assert case.is_dir()
    main(["worker", "--until-empty", "--json"])
    assert not case.exists()
    job = write_report(job, "b")
    upload = home / "web" / "staging" / f".upload.{dead_owner()}_x1.partial"
    (upload / "case").mkdir(parents=True)
    (upload / "case" / "t1.nii.gz").write_bytes(b"patient data")
    with TestClient(create_app(load_web_settings(secret_key="k"))):
        pass
    assert not job.exists() and not upload.exists()
