"""Uploads: hostile or oversized zips are refused with nothing written, and the server stays up."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.web.models import Job
from neurotriage.web.uploads import job_error

from .helpers import make_client, page_csrf, sign_in


def job_count(url: str) -> int:
    with db.transaction(url) as session:
        return session.scalar(select(func.count(Job.id)))


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def upload(client, patient_id: int, name: str, data: bytes):
    token = page_csrf(client)
    return client.post(
        f"/patients/{patient_id}/upload",
        data={"csrf_token": token},
        files={"case_zip": (name, data, "application/zip")},
    )


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_zip_slip_is_refused_with_nothing_written(client, web_settings, case_zip, tmp_path):
    before, files = job_count(web_settings.database_url), files_under(web_settings.data_dir)
    with zipfile.ZipFile(case_zip) as archive:
        real = {i.filename: archive.read(i) for i in archive.infolist()}
    for evil in ("../escaped.txt", "SYN_RF/../../escaped.txt", "/tmp/escaped.txt"):
        r = upload(client, 1, "case.zip", zip_bytes(real | {evil: b"owned"}))
        assert r.status_code == 400 and "leaves the upload folder" in r.text
    assert job_count(web_settings.database_url) == before
    assert files_under(web_settings.data_dir) == files
    assert not (web_settings.data_dir.parent / "escaped.txt").exists()
    assert not Path("/tmp/escaped.txt").exists()
    assert client.get("/patients").status_code == 200  # still up


def test_wrong_type_and_incomplete_cases_are_refused(client, web_settings):
    before, files = job_count(web_settings.database_url), files_under(web_settings.data_dir)
    r = upload(client, 1, "case.zip", b"this is not a zip at all")
    assert r.status_code == 400 and "not a zip file" in r.text
    assert upload(client, 1, "case.tar", zip_bytes({"a.txt": b"x"})).status_code == 400
    r = upload(client, 1, "case.zip", zip_bytes({"X/X_flair.nii.gz": b"not really"}))
    assert r.status_code == 400 and "missing" in r.text
    assert job_count(web_settings.database_url) == before
    assert files_under(web_settings.data_dir) == files


def test_oversized_upload_is_refused_and_the_server_stays_up(web_settings, case_zip):
    with make_client(web_settings, max_upload_bytes=10_000) as c:
        sign_in(c)
        before, files = job_count(web_settings.database_url), files_under(web_settings.data_dir)
        r = upload(c, 1, "SYN_RF.zip", case_zip.read_bytes())
        assert r.status_code == 413 and "larger than the limit" in r.text
        # Just under the middleware's allowance for form fields: refused by the exact file check.
        r = upload(c, 1, "SYN_RF.zip", b"PK\x03\x04" + bytes(20_000))
        assert r.status_code == 400 and "over the limit" in r.text
        assert job_count(web_settings.database_url) == before
        assert files_under(web_settings.data_dir) == files
        assert c.get("/patients").status_code == 200


def test_upload_errors_name_the_file_inside_the_zip_not_a_server_path(client, web_settings):
    r = upload(client, 1, "mine.zip", zip_bytes({"X/X_flair.nii.gz": b"not really"}))
    assert r.status_code == 400 and "mine.zip/X: missing" in r.text
    assert str(web_settings.data_dir) not in r.text and "upload-" not in r.text


def test_job_errors_name_the_upload_not_the_job_folder(client, web_settings):
    garbage = {f"X/X_{seq}.nii.gz": b"not an image" for seq in ("flair", "t1", "t1ce", "t2")}
    r = upload(client, 1, "broken.zip", zip_bytes(garbage))
    assert r.status_code == 200, r.text  # the names make a case; the contents fail when the job reads them
    job_id = int(str(r.url).rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    assert job["status"] == "failed" and job["error"].startswith("broken.zip/X_"), job["error"]
    assert str(web_settings.data_dir) not in job["error"]
    assert str(web_settings.data_dir) not in client.get(f"/jobs/{job_id}").text


def test_job_error_hides_the_job_folder_and_the_ingested_case():
    case = Path("/srv/neurotriage/jobs/12/job-12-0a1b2c3d")
    message = f"{case}/X_t2.nii.gz: volume is all zero; {case.parent}/report: not a folder"
    assert job_error(message, case, "scan.zip") == "scan.zip/X_t2.nii.gz: volume is all zero; job/report: not a folder"
    qc_figure = f"see {raw_case_dir(case)}_ingest_qc_failed.png"
    assert job_error(qc_figure, case, "scan.zip") == "see cases/job-12-0a1b2c3d_ingest_qc_failed.png"
