"""The DICOM node's hand-off: a complete study becomes a queued study of the patient its PatientID names, dated by
its StudyDate (the time axis of follow-up)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from neurotriage.cli import main
from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Study
from neurotriage.ingest.dicom import dicom_date
from neurotriage.pacs.inbox import Inbox, StudyState, patient_tags
from neurotriage.pacs.node import Node


def test_a_received_study_is_queued_dated_by_its_study_date(
    series_files: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'node.db'}")
    assert main(["db", "init"]) == 0
    header = pydicom.dcmread(series_files[0], stop_before_pixels=True)
    inbox = Inbox(tmp_path / "inbox", stable_s=1.0)
    study_dir = inbox.study_dir(header.StudyInstanceUID)
    for path in series_files:
        (study_dir / header.SeriesInstanceUID).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, study_dir / header.SeriesInstanceUID / path.name)
    state = StudyState(study_uid=header.StudyInstanceUID, state="complete", patient=patient_tags(header))
    Node(inbox, None).hand_off(study_dir, state)
    with transaction() as session:
        study = session.scalar(select(Study).where(Study.case_ref == str(study_dir)))
        assert (study.study_date, study.queued_at is not None) == (dicom_date(header.StudyDate), True)
    assert state.state == "queued" and study.study_date is not None
