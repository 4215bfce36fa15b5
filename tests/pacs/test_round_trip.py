"""The whole DICOM node against a real PACS: a study stored into Orthanc is forwarded to the listener, diagnosed,
and its DICOM SEG, structured report and summary page end up in Orthanc's copy of the same study."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from neurotriage.cli import main
from neurotriage.pacs.inbox import Inbox, inbox_root, read_state
from neurotriage.pacs.listener import Listener, ListenerConfig
from neurotriage.pacs.node import Node
from neurotriage.pacs.results import read_sr_volumes
from neurotriage.pacs.send import Destination

from .conftest import LISTENER_AET, LOOPBACK, ORTHANC_AET, QUIET_S, SYNTH_CASE, send, wait_until

pytestmark = pytest.mark.slow  # ingest, segmentation and report of one study: about a minute


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty installation: its own NEUROTRIAGE_HOME and SQLite database."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'node.db'}")
    assert main(["db", "init"]) == 0
    return tmp_path / "home"


def test_a_study_from_orthanc_comes_back_with_seg_sr_and_summary(
    home: Path, start_orthanc, synth_dicom_root: Path, tmp_path: Path
) -> None:
    inbox = Inbox(inbox_root(), stable_s=QUIET_S)
    node = Node(inbox, None)
    listener = Listener(inbox, ListenerConfig(LISTENER_AET, LOOPBACK, 0, (), check_s=0.1), node.hand_off)
    listener.start()
    stop = threading.Event()
    worker = threading.Thread(target=node.run_worker, args=(stop,), kwargs={"poll_s": 0.2})
    try:
        orthanc = start_orthanc(listener.port)
        node.destination = Destination(ORTHANC_AET, LOOPBACK, orthanc.dicom_port)
        worker.start()
        files = sorted((synth_dicom_root / SYNTH_CASE / "dicom").rglob("*.dcm"))
        assert set(send(orthanc.dicom_port, files, called=ORTHANC_AET)) == {0}
        sent_at = time.monotonic()
        (study,) = orthanc.get("/studies")
        study_uid = orthanc.get(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]

        def state() -> str | None:
            found = read_state(inbox.study_dir(study_uid))
            return found.state if found else None

        wait_until(lambda: state() in ("sent", "failed"), timeout=600, what="the study's results to reach Orthanc")
        assert state() == "sent", read_state(inbox.study_dir(study_uid)).error
        print(f"last instance to results stored in Orthanc: {time.monotonic() - sent_at:.0f} s")
    finally:
        stop.set()
        if worker.is_alive():
            worker.join()
        listener.stop()
    modalities = {
        orthanc.get(f"/series/{s}")["MainDicomTags"]["Modality"] for s in orthanc.get(f"/studies/{study}")["Series"]
    }
    assert {"SEG", "SR", "OT", "MR"} <= modalities
    (sr_series,) = [
        s
        for s in orthanc.get(f"/studies/{study}")["Series"]
        if orthanc.get(f"/series/{s}")["MainDicomTags"]["Modality"] == "SR"
    ]
    (sr_instance,) = orthanc.get(f"/series/{sr_series}")["Instances"]
    sr_file = tmp_path / "sr.dcm"
    with urllib.request.urlopen(f"{orthanc.url}/instances/{sr_instance}/file", timeout=10) as answer:
        sr_file.write_bytes(answer.read())
    (report,) = (home / "reports").glob("patient-*/finding-*/report.json")
    volumes = json.loads(report.read_text())["locate"]["volumes_ml"]
    assert read_sr_volumes(sr_file) == pytest.approx(volumes, abs=0.01)
