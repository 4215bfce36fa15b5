"""Retention: `neurotriage check` lists what the NEUROTRIAGE_RETAIN_*_DAYS rules remove, `check --apply`
removes it, and nothing a study still to be diagnosed needs is touched."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from sqlalchemy import update

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Study, utcnow
from neurotriage.config import load_settings
from neurotriage.files import write_json_atomic
from neurotriage.pacs.inbox import StudyState, inbox_root, write_state
from neurotriage.web.models import Job

from .seed import Identity, seed_patient, write_dicom

WHO = Identity()
OLD = timedelta(days=40)


def age(url: str, model, row_id: int, **columns) -> None:
    """Set `columns` (datetimes) of one row."""
    with db.transaction(url) as session:
        session.execute(update(model).where(model.id == row_id).values(**columns))


def received_unfiled(state: str, arrived_days_ago: int) -> Path:
    """A received DICOM study that no study row uses, in `state`, its last instance that many days old."""
    uid = generate_uid()
    folder = inbox_root() / uid
    arrived = (utcnow() - timedelta(days=arrived_days_ago)).isoformat() + "+00:00"
    write_state(folder, StudyState(uid, state=state, last_arrival=arrived))
    write_dicom(folder / "1.2" / "1.2.3.dcm", WHO, uid)
    return folder


def failed_job(url: str, patient_id: int, days_ago: int) -> Path:
    """A job whose study was parked that many days ago, with its folder."""
    with db.transaction(url) as session:
        job = Job(patient_id=patient_id, upload_name="x.zip", work_dir="", status="failed", error="no brain")
        session.add(job)
        session.flush()
        work = load_settings().home / "web" / "jobs" / str(job.id)
        study = intake.study_for(session, patient_id, str(work / f"job-{job.id}-feedbeef"))
        when = utcnow() - timedelta(days=days_ago)
        study.parked_at, job.study_id, job.work_dir, job.updated_at = when, study.id, str(work), when
    write_json_atomic(work / "options.json", {})
    write_dicom(work / f"job-{job.id}-feedbeef" / "IM1", WHO, generate_uid())
    return work


@pytest.fixture
def scene(url: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Retention of 30 days for raw studies and 7 for failed jobs, and one of each case the rules judge."""
    monkeypatch.setenv("NEUROTRIAGE_RETAIN_RAW_DAYS", "30")
    monkeypatch.setenv("NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS", "7")
    seeded = seed_patient(url, WHO)
    age(url, Study, seeded.received, created_at=utcnow() - OLD)  # diagnosed 40 days ago; the upload: today
    received, received_case, report, _outbox = seeded.folders[seeded.received]
    queued = received_unfiled("diagnosed", 40)
    with db.transaction(url) as session:  # an old received study queued again: still needed
        study = intake.study_for(session, seeded.patient_id, str(queued))
        study.created_at, study.queued_at = utcnow() - OLD, utcnow()
    return {
        "raw": received,
        "unfiled": received_unfiled("failed", 40),
        "failed job": failed_job(url, seeded.patient_id, 10),
        # kept
        "case": received_case,
        "report": report,
        "upload": seeded.folders[seeded.uploaded][0],
        "queued": queued,
        "receiving": received_unfiled("receiving", 40),
        "recent unfiled": received_unfiled("failed", 5),
        "recent failed job": failed_job(url, seeded.patient_id, 2),
    }


GONE = ("raw", "unfiled", "failed job")


def test_check_lists_what_retention_removes_and_apply_removes_it(scene: dict[str, Path], cli) -> None:
    listed = cli("check", "--json")
    report = json.loads(listed.out)["retention"]
    assert sorted(item["path"] for item in report["items"]) == sorted(str(scene[k].resolve()) for k in GONE)
    assert {item["rule"] for item in report["items"]} == {"raw study", "received DICOM", "failed job"}
    assert all(item["files"] > 0 and item["bytes"] > 0 for item in report["items"]) and not report["applied"]
    assert all(path.exists() for path in scene.values())

    text = cli("check").out.splitlines()
    line = next(line for line in text if line.startswith("retention"))
    assert line.startswith("retention (raw studies after 30 days; failed jobs after 7 days): would remove ")
    assert line.endswith("--apply removes them") and all(path.exists() for path in scene.values())

    applied = cli("check", "--apply").out.splitlines()
    line = next(line for line in applied if line.startswith("retention"))
    assert ": removed raw study: 1, received DICOM: 1, failed job: 1; " in line
    assert [k for k, path in scene.items() if not path.exists()] == list(GONE)
    assert "nothing to remove" in next(line for line in cli("check").out.splitlines() if line.startswith("retention"))


def test_without_retention_settings_nothing_is_listed(url: str, home: Path, cli) -> None:
    seed_patient(url, WHO)
    result = cli("check", "--json")
    assert json.loads(result.out)["retention"]["items"] == []
    assert not any(line.startswith("retention") for line in cli("check", "--apply").out.splitlines())


def test_a_bad_retention_setting_is_one_line(url: str, home: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS", "a week")
    run = cli("check")
    assert run.code == 2 and run.err.strip() == (
        "neurotriage: error: NEUROTRIAGE_RETAIN_FAILED_JOB_DAYS='a week': not a whole number"
    )
