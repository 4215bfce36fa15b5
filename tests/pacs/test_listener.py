"""The DICOM listener on loopback: instances filed durably, studies completed once after their quiet period,
duplicates, refused callers and mixed patients, a listener stopped mid-transfer, dcmtk's storescu."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage, Verification

from neurotriage.pacs.inbox import read_events

from .conftest import LISTENER_AET, LOOPBACK, required_tool, send, wait_until


def _uids(path: Path) -> tuple[str, str, str]:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_a_series_is_filed_and_its_study_completes_once_after_the_quiet_period(start_listener, series_files):
    running = start_listener()
    assert send(running.port, series_files) == [0] * len(series_files)
    study_uid = _uids(series_files[0])[0]
    assert running.state(study_uid).state == "receiving"  # acknowledged, not yet quiet for QUIET_S
    for path in series_files:
        study, series, sop = _uids(path)
        assert (running.listener.inbox.root / study / series / f"{sop}.dcm").read_bytes()[128:132] == b"DICM"

    wait_until(lambda: running.completed, what="the study to complete")
    time.sleep(0.5)  # several more checks: still handed on once
    assert len(running.completed) == 1
    study_dir, handed = running.completed[0]
    assert study_dir == running.listener.inbox.root / study_uid
    state = running.state(study_uid)
    assert (state.state, state.instances, state.handed_on, state.calling_aes) == ("complete", 33, True, ["SCANNER"])
    assert handed.patient["PatientID"] == pydicom.dcmread(series_files[0]).PatientID != ""
    assert state.first_arrival <= state.last_arrival and state.error is None


def test_c_echo_is_answered(start_listener):
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(LOOPBACK, start_listener().port, ae_title=LISTENER_AET)
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_duplicates_are_acknowledged_and_nothing_is_rewritten_or_handed_on_again(start_listener, series_files):
    running = start_listener()
    files = series_files[:5]
    assert send(running.port, [*files, files[0]]) == [0] * 6  # one duplicate within the transfer
    wait_until(lambda: running.completed, what="the study to complete")
    filed = sorted((running.listener.inbox.root).glob("*/*/*.dcm"))
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in filed]

    assert send(running.port, files) == [0] * 5  # the sender retries the whole study
    time.sleep(1.0)
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in filed] == before
    state = running.state(_uids(files[0])[0])
    assert (state.state, state.instances, len(running.completed)) == ("complete", 5, 1)


def test_a_calling_ae_title_outside_the_allow_list_is_rejected_with_one_log_line(start_listener, series_files, caplog):
    running = start_listener(allowed=("PACS",))
    intruder = AE(ae_title="INTRUDER")
    intruder.add_requested_context(MRImageStorage)
    with caplog.at_level(logging.WARNING, logger="neurotriage.pacs"):
        assoc = intruder.associate(LOOPBACK, running.port, ae_title=LISTENER_AET)
        assert assoc.is_rejected
        wait_until(lambda: "INTRUDER" in caplog.text, what="the rejection to be logged")
    [line] = [r.getMessage() for r in caplog.records if "INTRUDER" in r.getMessage()]
    assert line.startswith(f"association from INTRUDER@{LOOPBACK}:") and "allow-list" in line
    newest = read_events()[0]  # the web app's DICOM page shows the node's events
    assert newest["kind"] == "rejected" and newest["detail"] == line
    assert not running.listener.inbox.root.exists() or not any(running.listener.inbox.root.iterdir())
    assert send(running.port, series_files[:1], calling="PACS") == [0]


def test_a_study_mixing_two_patients_is_refused_and_not_handed_on(start_listener, series_files, tmp_path, caplog):
    intruder = pydicom.dcmread(series_files[2])
    first_id = intruder.PatientID
    intruder.PatientID, intruder.SOPInstanceUID = "OTHER-42", generate_uid()
    intruder.file_meta.MediaStorageSOPInstanceUID = intruder.SOPInstanceUID
    intruder.save_as(tmp_path / "intruder.dcm", enforce_file_format=True)

    running = start_listener()
    with caplog.at_level(logging.ERROR, logger="neurotriage.pacs"):
        assert send(running.port, [*series_files[:2], tmp_path / "intruder.dcm"]) == [0, 0, 0]
        study_uid = _uids(series_files[0])[0]
        wait_until(lambda: running.state(study_uid).state == "failed", what="the study to be refused")
    state = running.state(study_uid)
    assert first_id in state.error and "OTHER-42" in state.error and "\n" not in state.error
    assert running.completed == [] and not state.handed_on
    assert any("refused" in r.getMessage() and "OTHER-42" in r.getMessage() for r in caplog.records)


def test_a_listener_stopped_mid_transfer_loses_nothing_and_the_resent_study_completes_once(
    start_listener, series_files
):
    first = start_listener()
    half = len(series_files) // 2
    ae = AE(ae_title="SCANNER")
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate(LOOPBACK, first.port, ae_title=LISTENER_AET)
    assert [assoc.send_c_store(path).Status for path in series_files[:half]] == [0] * half
    first.listener.stop()  # killed mid-association: the sender sees the association aborted
    wait_until(lambda: not assoc.is_alive(), what="the association to end")
    study_uid = _uids(series_files[0])[0]
    assert first.state(study_uid).state == "receiving" and first.completed == []
    assert len(list(first.listener.inbox.study_dir(study_uid).glob("*/*.dcm"))) == half

    second = start_listener()  # a new process's listener over the same inbox
    assert second.state(study_uid).instances == half  # counted from the disk at start-up
    assert send(second.port, series_files) == [0] * len(series_files)
    wait_until(lambda: second.completed, what="the resent study to complete")
    time.sleep(0.5)
    state = second.state(study_uid)
    assert (state.state, state.instances, len(second.completed)) == ("complete", len(series_files), 1)
    assert len(list(second.listener.inbox.study_dir(study_uid).glob("*/*.dcm"))) == len(series_files)


def test_dcmtk_storescu_stores_a_series(start_listener, series_files):
    storescu = required_tool("storescu")
    running = start_listener()
    folder = series_files[0].parent
    command = [storescu, "-aet", "SCANNER", "-aec", LISTENER_AET, LOOPBACK, str(running.port), "+sd", str(folder)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    wait_until(lambda: running.completed, what="the study to complete")
    assert running.completed[0][1].instances == len(series_files)
