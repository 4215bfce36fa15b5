"""A clinician's sign-off of a finding whose study came from the DICOM node sends the final or amended results
to the configured PACS (a real Orthanc): a confirming sign-off a final SR that replaces the preliminary one, an
override an amended SR with the new location and verdict that replaces the final one; dciodvfy finds no error in
them. A study that did not come from the node, or an installation without a destination, sends nothing, and a
slow or unreachable PACS holds up no review: the results wait in the outbox, and the web app sends them once
the PACS is back."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import highdicom as hd
import nibabel as nib
import pydicom
import pytest
from sqlalchemy import select

from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import Review
from neurotriage.ingest.layout import INGEST_FOLDER, NATIVE_T1CE, T1CE_DICOM
from neurotriage.pacs import signoff
from neurotriage.pacs.inbox import inbox_root
from neurotriage.pacs.send import DestinationStatus, outbox_status
from neurotriage.pacs.signoff import REVIEWED_FOLDER
from neurotriage.report.folder import write_report
from neurotriage.report.inputs import ReportInput
from neurotriage.web.pacs_results import sign_off_of

from ..web.conftest import fresh_web_settings
from ..web.helpers import make_client, page_csrf, sign_in
from .conftest import LOOPBACK, ORTHANC_AET, free_port, required_tool, wait_until
from .test_results import text_items
from .test_send import StoreSCP, dataset_bytes

pytestmark = pytest.mark.slow  # the synthetic study, its SEG and preliminary results, then Orthanc: about 40 s
CONFIRM = {"location_decision": "confirm", "verdict_decision": "confirm", "comment": "agreed"}
OVERRIDE = {
    "location_decision": "override", "location_override": {"hemisphere": "left", "regions": ["frontal_lobe"]},
    "verdict_decision": "override", "verdict_override": "discordant", "comment": "left frontal on review",
}  # fmt: skip


@pytest.fixture(scope="module")
def written(report: ReportInput, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finding's report folder, with its preliminary SEG, SR and summary page in native/."""
    return write_report(tmp_path_factory.mktemp("written") / "report", report)


def store_finding(url: str, report: ReportInput, written: Path, root: Path, case_ref: str) -> tuple[int, Path]:
    """A finding of `report` for the study `case_ref`, with a copy of its `written` report folder and the case
    folder ingest would have written (the T1ce series and the native T1ce); (finding id, report folder)."""
    native = report.imaging.native
    ingest = root / "case" / INGEST_FOLDER
    if not ingest.is_dir():
        shutil.copytree(native.dicom_folder, ingest / T1CE_DICOM)
        nib.save(nib.Nifti1Image(native.t1ce, native.affine), ingest / NATIVE_T1CE)
    report_dir = shutil.copytree(written, root / f"report-{len(list(root.glob('report-*')))}")
    provenance = {"inputs": [{"path": str(root / "case" / "C1_t1ce.nii.gz"), "sha256": "0" * 64}]}
    with db.transaction(url) as session:
        patient = intake.add_patient(session, "Node Patient")
        stored = decisions.store_diagnosis(
            session, patient.id, case_ref, report.locate, "m", report_dir=str(report_dir), provenance=provenance
        )
    return stored["finding_id"], report_dir


def review(client, finding_id: int, body: dict) -> float:
    """Post a review through the API; the seconds it took."""
    started = time.perf_counter()
    made = client.post(f"/api/findings/{finding_id}/reviews", json=body, headers={"X-CSRF-Token": page_csrf(client)})
    assert made.status_code == 201, made.text
    return time.perf_counter() - started


def review_ids(url: str, finding_id: int) -> list[int]:
    with db.transaction(url) as session:
        return list(session.scalars(select(Review.id).where(Review.finding_id == finding_id).order_by(Review.id)))


def sent_sr(report_dir: Path, review_id: int) -> pydicom.Dataset:
    return hd.sr.srread(report_dir / REVIEWED_FOLDER / f"review-{review_id}" / "C1_sr.dcm")


def predecessor(sr: pydicom.Dataset) -> str:
    (study,) = sr.PredecessorDocumentsSequence
    (series,) = study.ReferencedSeriesSequence
    (instance,) = series.ReferencedSOPSequence
    return instance.ReferencedSOPInstanceUID


def assert_dciodvfy_clean(paths: list[Path]) -> None:
    tool = required_tool("dciodvfy")
    for path in paths:
        checked = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
        output = checked.stdout + checked.stderr
        assert not [line for line in output.splitlines() if line.startswith(("Error", "Warning"))], output


def test_sign_offs_send_a_final_then_an_amended_sr_to_orthanc(report, written, tmp_path, monkeypatch, start_orthanc):
    settings = fresh_web_settings(tmp_path)
    finding_id, report_dir = store_finding(
        settings.database_url, report, written, tmp_path, str(inbox_root() / "1.2.3")
    )
    orthanc = start_orthanc(free_port())  # it forwards nothing here: no listener on that port
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_TO", f"{ORTHANC_AET}@{LOOPBACK}:{orthanc.dicom_port}")
    with make_client(settings, job_workers=0) as client:
        sign_in(client)
        review(client, finding_id, CONFIRM)
        wait_until(lambda: len(orthanc.get("/instances")) == 2, timeout=60, what="the final SR and page in Orthanc")
        review(client, finding_id, OVERRIDE)
        wait_until(lambda: len(orthanc.get("/instances")) == 4, timeout=60, what="the amended SR and page")
    confirmed, overridden = review_ids(settings.database_url, finding_id)
    preliminary = pydicom.dcmread(report_dir / "native" / "C1_sr.dcm")
    final, amended = sent_sr(report_dir, confirmed), sent_sr(report_dir, overridden)
    for sr in (final, amended):
        assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("COMPLETE", "VERIFIED", "FINAL")
        assert sr.VerifyingObserverSequence[0].VerifyingObserverName == "clin^"  # the username as a family name
        assert sr.StudyInstanceUID == preliminary.StudyInstanceUID
    assert predecessor(final) == preliminary.SOPInstanceUID and predecessor(amended) == final.SOPInstanceUID
    assert ("Comment", "Signed off by a clinician") in text_items(final)
    assert ("Finding", "Location: right temporal lobe") in text_items(final)
    texts = text_items(amended)
    assert ("Finding", "Location: left frontal lobe") in texts
    assert ("Conclusion", "Symptom cross-check: discordant") in texts
    assert ("Comment", "Amended by a clinician: location left frontal lobe; symptom cross-check discordant") in texts
    stored = {orthanc.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"] for i in orthanc.get("/instances")}
    assert {final.SOPInstanceUID, amended.SOPInstanceUID} <= stored
    (study,) = orthanc.get("/studies")
    assert orthanc.get(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"] == preliminary.StudyInstanceUID
    assert_dciodvfy_clean(sorted((report_dir / REVIEWED_FOLDER).rglob("*.dcm")))


def test_nothing_is_sent_for_a_study_from_elsewhere_or_without_a_destination(report, written, tmp_path, monkeypatch):
    settings = fresh_web_settings(tmp_path)
    uploaded, _ = store_finding(settings.database_url, report, written, tmp_path, str(tmp_path / "upload"))
    received, _ = store_finding(settings.database_url, report, written, tmp_path, str(inbox_root() / "1.2.4"))
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_TO", f"PACS@{LOOPBACK}:104")
    with db.transaction(settings.database_url) as session:
        assert sign_off_of(session, uploaded, Review(id=1, location_decision="confirm")) is None
        assert sign_off_of(session, received, Review(id=1, location_decision="confirm")) is not None
        monkeypatch.delenv("NEUROTRIAGE_DICOM_SEND_TO")
        assert sign_off_of(session, received, Review(id=1, location_decision="confirm")) is None


def test_a_slow_or_down_pacs_holds_up_no_review_and_the_web_app_sends_once_it_is_up(
    report, written, tmp_path, monkeypatch
):
    settings = fresh_web_settings(tmp_path)
    finding_id, report_dir = store_finding(
        settings.database_url, report, written, tmp_path, str(inbox_root() / "1.2.5")
    )
    port = free_port()
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_TO", f"DOWN@{LOOPBACK}:{port}")
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_RETRY_S", "1")
    answered, tried = threading.Event(), signoff.send_pending

    def slow_send(**kwargs):  # a PACS that takes until the review has been answered, up to 30 s
        answered.wait(30)
        return tried(**kwargs)

    def waiting() -> DestinationStatus | None:
        found = [d for d in outbox_status().destinations if d.destination == f"DOWN@{LOOPBACK}:{port}"]
        return found[0] if found else None

    monkeypatch.setattr(signoff, "send_pending", slow_send)
    with make_client(settings, job_workers=0) as client:
        sign_in(client)
        seconds = review(client, finding_id, OVERRIDE)
        answered.set()
        wait_until(lambda: waiting() and waiting().items[0].last_error, what="a first failed try")
        assert waiting().queued == 1
        assert waiting().items[0].last_error == f"cannot connect to {LOOPBACK}:{port}"
        pacs = StoreSCP(port)  # the PACS comes up: the web app's own retries send the results, no CLI needed
        try:
            wait_until(lambda: waiting().sent == 1, timeout=60, what="the web app to retry the outbox")
        finally:
            pacs.server.shutdown()
    assert seconds < 10, f"the review took {seconds:.1f} s"
    (sr,) = list((report_dir / REVIEWED_FOLDER).rglob("*_sr.dcm"))
    assert dataset_bytes(sr) in pacs.received and len(pacs.received) == 2  # the amended SR and its summary page
