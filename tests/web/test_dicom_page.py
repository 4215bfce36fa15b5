"""The DICOM-node page and /api/dicom: received studies built with the inbox's own functions, an outbox item
for a destination that is down, shown with their states, errors and links; the view needs a login and is audited."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sqlalchemy import select

from neurotriage.clinical import db
from neurotriage.clinical.models import Finding, Patient, Study
from neurotriage.pacs.inbox import Inbox, inbox_root, read_state, record_event, write_state
from neurotriage.pacs.send import parse_destination, queue_results, send_pending
from neurotriage.web.models import AuditEvent

from .helpers import make_client, sign_in

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DOWN = "DOWNPACS@127.0.0.1:9"  # the discard port: nothing listens on it


def mr_instance(study_uid: str, patient_id: str, name: str = "DOE^JANE") -> tuple[Dataset, bytes]:
    """A tiny MR instance of `study_uid` and its file bytes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = patient_id, name, "MR"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return ds, buffer.getvalue()


@pytest.fixture
def node_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NEUROTRIAGE_HOME of this test's own, with no DICOM settings configured."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROTRIAGE_DICOM_ALLOWED_AES", "SCANNER,ORTHANC")
    for name in ("NEUROTRIAGE_DICOM_SEND_TO", "NEUROTRIAGE_DICOM_STABLE_S", "NEUROTRIAGE_DICOM_SEND_RETRY_S"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture
def node_client(own_web_settings):
    """A signed-in admin's client (the node page is for admins) of an app with a database of this test's own."""
    with make_client(own_web_settings) as c:
        assert sign_in(c).status_code == 200
        yield c


def _arrived(study_dir: Path, at: str) -> None:
    """Set a received study's last arrival (the inbox stamps whole seconds; tests need a strict order)."""
    state = read_state(study_dir)
    state.last_arrival = at
    write_state(study_dir, state)


@pytest.fixture
def node(node_home: Path, tmp_path: Path, own_web_settings) -> dict[str, str]:
    """Three received studies (a mixed-patient one refused, one diagnosed and filed with a finding, one still
    receiving) and results queued for a destination that is down, after one failed attempt."""
    inbox = Inbox(inbox_root(), stable_s=0)
    mixed, diagnosed, receiving = generate_uid(), generate_uid(), generate_uid()
    for study_uid, patient_id in ((mixed, "MRN-1"), (mixed, "MRN-2"), (diagnosed, "MRN-3")):
        inbox.store(*mr_instance(study_uid, patient_id), calling_ae="SCANNER")
    inbox.complete_due(lambda study_dir, state: None)
    inbox.store(*mr_instance(receiving, "MRN-4", "ROE^RICHARD"), calling_ae="ORTHANC")
    state = read_state(inbox.study_dir(diagnosed))
    state.state = "diagnosed"
    write_state(inbox.study_dir(diagnosed), state)
    for hour, study_uid in enumerate((mixed, diagnosed, receiving)):
        _arrived(inbox.study_dir(study_uid), f"2030-01-01T{10 + hour}:00:00+00:00")
    with db.transaction(own_web_settings.database_url) as session:
        patient = session.scalars(select(Patient).order_by(Patient.id)).first()
        study = Study(patient_id=patient.id, case_ref=str(inbox.study_dir(diagnosed)))
        session.add(study)
        session.flush()
        finding = Finding(study_id=study.id, locate={}, model_id="test")
        session.add(finding)
        session.flush()
        ids = {"patient": str(patient.id), "finding": str(finding.id)}
    result = tmp_path / "result.dcm"
    result.write_bytes(mr_instance(diagnosed, "MRN-3")[1])
    queue_results([result], parse_destination(DOWN), now=T0)
    send_pending(now=T0)
    record_event("rejected", "association from INTRUDER@127.0.0.1:50000 rejected: calling AE title not allowed")
    return ids | {"mixed": mixed, "diagnosed": diagnosed, "receiving": receiving}


def test_api_shows_studies_states_and_a_down_destination(node_client, node):
    body = node_client.get("/api/dicom").json()
    assert body["listener"] == {
        "command": "neurotriage listen", "allowed_aes": ["SCANNER", "ORTHANC"], "send_to": None, "stable_s": 30,
    }  # fmt: skip
    assert body["counts"] == {"receiving": 1, "complete": 0, "queued": 0, "diagnosed": 1, "sent": 0, "failed": 1}
    studies = {s["study_uid"]: s for s in body["studies"]}
    assert [s["study_uid"] for s in body["studies"]] == [node[k] for k in ("receiving", "diagnosed", "mixed")]
    mixed = studies[node["mixed"]]
    assert (mixed["state"], mixed["patient_id"], mixed["other_patient_ids"]) == ("failed", "MRN-1", ["MRN-2"])
    assert "two patients" in mixed["error"] and mixed["clinical_patient_id"] is None
    assert (mixed["instances"], mixed["series"], mixed["calling_aes"]) == (2, 2, ["SCANNER"])
    diagnosed = studies[node["diagnosed"]]
    assert (diagnosed["clinical_patient_id"], diagnosed["finding_id"]) == (int(node["patient"]), int(node["finding"]))
    assert studies[node["receiving"]]["patient_name"] == "ROE^RICHARD"
    (destination,) = body["destinations"]
    assert (destination["destination"], destination["queued"], destination["sent"]) == (DOWN, 1, 0)
    (item,) = destination["items"]
    assert item["attempts"] == 1 and item["state"] == "queued"
    assert item["last_error"] == "cannot connect to 127.0.0.1:9"
    assert item["next_attempt"].startswith("2030-01-01T12:00:30")
    assert "/" not in item["item"]  # its folder's name, not a server path


def test_page_shows_badges_errors_links_and_no_server_paths(node_client, node, node_home):
    html = node_client.get("/dicom").text
    assert 'href="/dicom"' in html  # the navigation link
    assert f'title="{node["mixed"]}"' in html and "MRN-2" in html
    assert '<span class="badge state-failed">failed</span>' in html
    assert "instances of two patients in one study" in html
    assert f'href="/patients/{node["patient"]}"' in html and f'href="/reports/{node["finding"]}"' in html
    assert "cannot connect to 127.0.0.1:9" in html and DOWN in html
    assert "neurotriage listen" in html and "SCANNER, ORTHANC" in html
    assert str(node_home) not in html
    assert "INTRUDER@127.0.0.1:50000 rejected" in html  # the node's events


def test_empty_node(client, node_home):
    body = client.get("/api/dicom").json()
    assert body["studies"] == [] and body["destinations"] == [] and body["events"] == []
    assert set(body["counts"].values()) == {0}
    html = client.get("/dicom").text
    assert "No study received yet." in html and "Nothing queued for any destination." in html


def test_needs_login_and_is_audited(web_settings, client, node_home):
    with make_client(web_settings) as anonymous:
        page = anonymous.get("/dicom", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login")
        assert anonymous.get("/api/dicom").status_code == 401
    with db.transaction(web_settings.database_url) as session:
        before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    client.get("/dicom")
    client.get("/api/dicom")
    with db.transaction(web_settings.database_url) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.id > before).order_by(AuditEvent.id)).all()
    assert [(e.username, e.action, e.target, e.detail) for e in events] == [
        ("clin", "view", "dicom", None),
        ("clin", "view", "dicom", {"via": "api"}),
    ]


def test_a_damaged_state_file_hides_only_its_study(client, node_home):
    Inbox(inbox_root(), stable_s=30).store(*mr_instance(generate_uid(), "MRN-5"), calling_ae="SCANNER")
    damaged = inbox_root() / generate_uid()
    damaged.mkdir()
    (damaged / "study.json").write_text("{not json", encoding="utf-8")
    studies = client.get("/api/dicom").json()["studies"]
    assert [s["patient_id"] for s in studies] == ["MRN-5"]
    assert "MRN-5" in client.get("/dicom").text
