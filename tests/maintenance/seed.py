"""A patient with everything neurotriage keeps about one, written where neurotriage writes it, small.

Two studies: one received by the DICOM node (its inbox folder, the case ingest made of it, a finding
with a report holding a DICOM SEG, a copy of that SEG in the outbox, a line in the node's event log) and
one uploaded in the web app (the job's folder with the upload and its report, the ingested case, the
quality gate's figure). A review, symptoms, a care-team grant and the audit events the web app writes
about such a patient (their summary, a search for their name, an upload named after them).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from sqlalchemy import select

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import Review
from neurotriage.config import load_settings
from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.files import write_json_atomic
from neurotriage.pacs.inbox import StudyState, inbox_root, record_event, write_state
from neurotriage.pacs.send import outbox_dir
from neurotriage.web.deps import audit
from neurotriage.web.models import Job, PatientAccess, User

from ..clinical.locates import locate


@dataclass(frozen=True)
class Identity:
    """What identifies a patient: the text an erasure must leave nowhere."""

    name: str = "Quilla Erasmus-Vandertrap"
    mrn: str = "MRN-ERASE-40913"
    birth: str = "1961-04-12"

    @property
    def needles(self) -> tuple[str, ...]:
        """The name, MRN and birth date as text, the DICOM birth date (DA) too."""
        return self.name, self.mrn, self.birth, self.birth.replace("-", "")


KEPT = Identity("Ottilie Keepwell-Staybright", "MRN-KEEP-55120", "1974-09-30")


@dataclass
class Seeded:
    """The ids of what was seeded, and the folders written for each study."""

    patient_id: int
    received: int  # the study the DICOM node received
    uploaded: int  # the study uploaded in the web app
    findings: list[int]
    job_id: int
    study_uid: str  # of the received study
    folders: dict[int, list[Path]] = field(default_factory=dict)  # study id -> the folders written for it


def write_dicom(path: Path, who: Identity, study_uid: str) -> Path:
    """A one-instance DICOM file naming the patient and the study."""
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = who.name, who.mrn, who.birth.replace("-", "")
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid(), generate_uid()
    ds.SOPClassUID = MRImageStorage
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = MRImageStorage, ds.SOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _ingested(source: Path, who: Identity) -> Path:
    """The BraTS case `ingest` makes of a raw study in NEUROTRIAGE_HOME/cases, with its record."""
    case = raw_case_dir(source)
    write_json_atomic(case / "ingest" / "ingest.json", {"input": str(source.resolve()), "patient": who.name})
    _write(case / f"{case.name}_t1ce.nii.gz", f"image of {who.name}")
    return case


def _report(folder: Path, key: str, who: Identity, study_uid: str) -> Path:
    """A report folder as `diagnose` writes it: report.json naming the finding, the page, a DICOM SEG."""
    write_json_atomic(folder / "report.json", {"finding_key": key, "patient": {"name": who.name, "mrn": who.mrn}})
    _write(folder / "report.html", f"<h1>{who.name}, born {who.birth}</h1>")
    write_dicom(folder / "native" / "seg.dcm", who, study_uid)
    return folder


def add_finding(session, patient_id: int, case_ref: str, report_dir: Path, who: Identity, study_uid: str) -> int:
    """A finding of the patient's study of `case_ref`, its report written to `report_dir`."""
    key = str(uuid.uuid4())
    _report(report_dir, key, who, study_uid)
    done = decisions.store_diagnosis(
        session, patient_id, case_ref, parse_location(locate()), "test", key=key, report_dir=str(report_dir)
    )
    return done["finding_id"]


def seed_patient(url: str, who: Identity = Identity()) -> Seeded:
    """Store and write a patient with two diagnosed studies, a review and a job (see the module docstring)."""
    with db.transaction(url) as session:
        user = session.scalar(select(User).where(User.username == "clin"))
        if user is None:
            user = User(username="clin", password_hash="-", role="clinician")
            session.add(user)
        patient = intake.add_patient(session, who.name, "female", who.birth, "Leeds", "53.80", "-1.55", None, who.mrn)
        intake.add_symptom(session, patient.id, "hemiparesis", side="left")
        session.flush()
        session.add(PatientAccess(patient_id=patient.id, user_id=user.id, kind="team", granted_by="admin"))
        audit(session, user, "create", f"patient:{patient.id}", intake.patient_summary(patient))
        audit(session, user, "view", "patients", {"search": who.name.upper()})
        received, finding, study_uid, received_folders = _received_study(session, user, patient.id, who)
        uploaded, second, job_id, upload_folders = _uploaded_study(session, user, patient.id, who)
        seeded = Seeded(patient.id, received, uploaded, [finding, second], job_id, study_uid)
    seeded.folders = {received: received_folders, uploaded: upload_folders}
    return seeded


def _received_study(session, user: User, patient_id: int, who: Identity) -> tuple[int, int, str, list[Path]]:
    """A study the DICOM node received, diagnosed and reviewed, its results waiting in the outbox; returns its
    id, its finding's, its StudyInstanceUID and its folders."""
    study_uid = generate_uid()
    folder = inbox_root() / study_uid
    tags = {"PatientName": who.name, "PatientID": who.mrn, "PatientBirthDate": who.birth.replace("-", "")}
    write_state(folder, StudyState(study_uid, state="diagnosed", patient=tags, handed_on=True))
    write_dicom(folder / "1.2.3" / "1.2.3.4.dcm", who, study_uid)
    study = intake.study_for(session, patient_id, str(folder))
    report = load_settings().home / "reports" / f"patient-{patient_id}" / "finding-1"
    finding = add_finding(session, patient_id, str(folder), report, who, study_uid)
    comment = f"called {who.name} back"
    session.add(Review(finding_id=finding, user_id=user.id, location_decision="confirm",
                       verdict_decision="confirm", comment=comment))  # fmt: skip
    audit(session, user, "review", f"finding:{finding}", {"comment": comment})
    outbox_item = outbox_dir() / "PACS@pacs_104" / f"20260101T000000000000-{uuid.uuid4().hex[:8]}"
    write_dicom(outbox_item / "001-seg.dcm", who, study_uid)
    write_json_atomic(outbox_item / "state.json", {"destination": "PACS@pacs:104", "files": ["001-seg.dcm"]})
    record_event("rejected", f"study {study_uid} resent by SCANNER: rejected")
    return study.id, finding, study_uid, [folder, _ingested(folder, who), report, outbox_item]


def _uploaded_study(session, user: User, patient_id: int, who: Identity) -> tuple[int, int, int, list[Path]]:
    """A raw study uploaded in the web app and diagnosed by its job; returns its id, its finding's, the job's
    and its folders."""
    job = Job(patient_id=patient_id, user_id=user.id, upload_name=f"{who.name}.zip", work_dir="", status="done")
    session.add(job)
    session.flush()
    work = load_settings().home / "web" / "jobs" / str(job.id)
    upload = work / f"job-{job.id}-0a1b2c3d"
    write_dicom(upload / "DICOM" / "IM0001", who, generate_uid())
    write_json_atomic(work / "options.json", {"accept_patient_mismatch": False})
    study = intake.study_for(session, patient_id, str(upload))
    finding = add_finding(session, patient_id, str(upload), work / "report", who, generate_uid())
    job.work_dir, job.study_id, job.finding_id = str(work), study.id, finding
    audit(session, user, "upload", f"patient:{patient_id}/job:{job.id}", {"file": f"{who.name}.zip"})
    case = _ingested(upload, who)
    qc_figure = _write(case.parent / f"{case.name}_ingest_qc_failed.png", who.name)
    return study.id, finding, job.id, [work, case, qc_figure]


def events_lines() -> list[dict]:
    """The DICOM node's event log."""
    path = load_settings().home / "dicom" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
