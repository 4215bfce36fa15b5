"""Uploads: hostile or oversized zips are refused with nothing written, and the server stays up."""

from __future__ import annotations

import gzip
import io
import resource
import time
import zipfile
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.errors import UserError
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE
from neurotriage.web import uploads
from neurotriage.web.models import Job
from neurotriage.web.uploads import job_error

from ..imaging.test_nifti_limits import write_bomb_zip
from .helpers import make_client, page_csrf, sign_in
from .test_jobs import job_study


def job_count(url: str) -> int:
    with db.transaction(url) as session:
        return session.scalar(select(func.count(Job.id)))


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def upload(client, patient_id: int, name: str, data: bytes, **fields: str):
    token = page_csrf(client)
    return client.post(
        f"/patients/{patient_id}/upload",
        data={"csrf_token": token} | fields,
        files={"case_zip": (name, data, "application/zip")},
    )


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def nan_nii_gz() -> bytes:
    """A readable NIfTI of a NaN volume: it passes the upload's header check and fails the job."""
    image = nib.Nifti1Image(np.full(GRID_SHAPE, np.nan, np.float32), BRATS_AFFINE)  # on the BraTS grid: not ingested
    return gzip.compress(image.to_bytes(), mtime=0)


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
    r = upload(client, 1, "case.zip", zip_bytes({"X/X_flair.nii.gz": nan_nii_gz()}))
    assert r.status_code == 400 and "missing" in r.text
    r = upload(client, 1, "case.zip", zip_bytes({"X/X_flair.nii.gz": b"not really"}))
    assert r.status_code == 400 and "case.zip: X/X_flair.nii.gz: cannot read its NIfTI header" in r.text
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


def test_a_typed_study_date_dates_the_study_and_a_bad_one_is_refused_naming_it(own_web_settings, case_zip):
    url, data = own_web_settings.database_url, case_zip.read_bytes()
    with make_client(own_web_settings, job_workers=0) as c:
        sign_in(c)
        files = files_under(own_web_settings.data_dir)
        for typed, problem in (("2099-01-01", "is in the future"), ("17/05/2024", "is not a date (YYYY-MM-DD)")):
            r = upload(c, 1, case_zip.name, data, study_date=typed)
            assert r.status_code == 400 and "study_date" in r.text and problem in r.text
        assert job_count(url) == 0 and files_under(own_web_settings.data_dir) == files
        dated = upload(c, 1, case_zip.name, data, study_date="2024-05-17")
        undated = upload(c, 1, case_zip.name, data)
    assert job_study(url, int(dated.url.path.rsplit("/", 1)[1])).study_date == date(2024, 5, 17)
    assert job_study(url, int(undated.url.path.rsplit("/", 1)[1])).study_date is None


def test_upload_errors_name_the_file_inside_the_zip_not_a_server_path(client, web_settings):
    r = upload(client, 1, "mine.zip", zip_bytes({"X/X_flair.nii.gz": nan_nii_gz()}))
    assert r.status_code == 400 and "mine.zip/X: missing" in r.text
    assert str(web_settings.data_dir) not in r.text and "upload-" not in r.text


def test_job_errors_name_the_upload_not_the_job_folder(client, web_settings):
    garbage = {f"X/X_{seq}.nii.gz": nan_nii_gz() for seq in ("flair", "t1", "t1ce", "t2")}
    r = upload(client, 1, "broken.zip", zip_bytes(garbage))
    assert r.status_code == 200, r.text  # the names make a case; the contents fail when the job reads them
    job_id = int(str(r.url).rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    assert job["status"] == "failed" and job["error"].startswith("broken.zip/X_"), job["error"]
    assert str(web_settings.data_dir) not in job["error"]
    page = client.get(f"/jobs/{job_id}").text
    assert str(web_settings.data_dir) not in page and "failed: broken.zip/X_" in page
    assert all(stage["state"] != "running" for stage in job["stages"]), job["stages"]


def test_job_error_hides_the_job_folder_and_the_ingested_case():
    case = Path("/srv/neurotriage/jobs/12/job-12-0a1b2c3d")
    message = f"{case}/X_t2.nii.gz: volume is all zero; {case.parent}/report: not a folder"
    assert job_error(message, case, "scan.zip") == "scan.zip/X_t2.nii.gz: volume is all zero; job/report: not a folder"
    qc_figure = f"see {raw_case_dir(case)}_ingest_qc_failed.png"
    assert job_error(qc_figure, case, "scan.zip") == "see cases/job-12-0a1b2c3d_ingest_qc_failed.png"


def test_the_gzip_bomb_is_refused_from_its_header_naming_the_file(client, web_settings, tmp_path):
    bomb = write_bomb_zip(tmp_path / "bomb.zip").read_bytes()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = upload(client, 1, "bomb.zip", bomb)
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert r.status_code == 400 and "bomb.zip: BOMB/BOMB_flair.nii.gz: the header declares 2048x2048x1024" in r.text
    assert growth_kib < 1024**2, f"peak RSS grew {growth_kib / 1024:.0f} MiB"
    print(f"bomb upload: peak RSS grew {growth_kib / 1024:.0f} MiB")


def test_mac_metadata_is_ignored_and_a_bad_crc_is_a_400(client, case_zip):
    with zipfile.ZipFile(case_zip) as archive:
        real = {i.filename: archive.read(i) for i in archive.infolist()}
    junk = {"__MACOSX/SYN_RF/._SYN_RF_flair.nii.gz": b"\x00\x05\x16\x07", "SYN_RF/._SYN_RF_t1.nii.gz": b"fork"}
    assert upload(client, 1, "mac.zip", zip_bytes(real | junk)).status_code == 200
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in real.items():
            archive.writestr(name, data)
    damaged = bytearray(buffer.getvalue())
    damaged[len(damaged) // 2] ^= 0xFF  # inside a member's stored data: its CRC no longer matches
    r = upload(client, 1, "crc.zip", bytes(damaged))
    assert r.status_code == 400 and "crc.zip: cannot unpack" in r.text


def test_a_high_ratio_nifti_is_judged_by_its_header(monkeypatch):
    monkeypatch.setattr(uploads, "EXPANDED_FLOOR", 0)  # the ratio alone, as for a large upload
    header = nib.Nifti1Header()
    header.set_data_shape((128, 128, 64))
    header.set_data_dtype(np.float32)
    header["vox_offset"] = 352
    nii = header.binaryblock + bytes(4) + bytes(128 * 128 * 64 * 4)  # 4 MiB of background deflates ~1000x
    data = io.BytesIO(zip_bytes({"X/series_3.nii": nii}, zipfile.ZIP_DEFLATED))
    size = len(data.getvalue())
    assert [p.name for _, p in uploads.check_zip("s.zip", data, size, 1 << 30)] == ["series_3.nii"]
    undeclared = nii + bytes(4 << 20)  # bytes its header does not account for count against the ratio
    trailing = io.BytesIO(zip_bytes({"X/series_3.nii": undeclared}, zipfile.ZIP_DEFLATED))
    with pytest.raises(UserError, match="possible zip bomb"):
        uploads.check_zip("s.zip", trailing, len(trailing.getvalue()), 1 << 30)


def test_an_id_beyond_the_integer_range_is_a_404(client):
    assert client.get("/patients/99999999999999999999").status_code == 404
    assert client.get("/patients/99999999").status_code == 404
