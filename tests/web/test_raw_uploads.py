"""Raw studies uploaded through the web: a zip of DICOM files or of a converter's NIfTI series is queued as
its job's study, hostile zips are still refused with one line, and a study of another patient fails its
job unless the upload accepts the mismatch (then it runs to a report with a DICOM SEG)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pydicom
import pytest

from neurotriage.cli import main
from neurotriage.config import load_settings
from neurotriage.imaging.io import load_seg
from neurotriage.imaging.naming import BRATS2020
from neurotriage.ingest.dicom import dicom_date
from neurotriage.web.jobs import job_options
from neurotriage.web.uploads import MAX_ENTRIES, expanded_limit

from .helpers import make_client, page_csrf, sign_in
from .test_jobs import job_study, new_patient
from .test_uploads import files_under, job_count, zip_bytes

CASE = "SYN_0000"  # synth's first case
INGEST_STAGES = {"read study", "load series", "co-register", "skull strip", "register to template", "write case"}


def synth_study_zip(root: Path, flag: str) -> tuple[Path, Path]:
    """`neurotriage synth --n 1 --seed 1 FLAG` under `root`, its study folder zipped as a user would:
    (the zip, the truth folder)."""
    assert main(["synth", str(root / "out"), "--n", "1", "--seed", "1", flag]) == 0
    study = root / "out" / CASE
    path = root / f"{CASE}{flag}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in study.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(study.parent).as_posix())
    return path, root / "out" / "truth" / CASE


@pytest.fixture(scope="module")
def nifti_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic raw study as a converter's NIfTI series, zipped, and its truth folder."""
    return synth_study_zip(tmp_path_factory.mktemp("raw"), "--raw")


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic raw study as DICOM series (one file per slice), zipped, and its truth folder."""
    return synth_study_zip(tmp_path_factory.mktemp("dicom"), "--dicom")


def post_upload(client, patient_id: int, name: str, data: bytes, accept_mismatch: bool = False, **fields: str):
    fields |= {"csrf_token": page_csrf(client)} | ({"accept_patient_mismatch": "true"} if accept_mismatch else {})
    return client.post(
        f"/patients/{patient_id}/upload",
        data=fields,
        files={"case_zip": (name, data, "application/zip")},
        follow_redirects=False,
    )


def job_id_of(response) -> int:
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def wait_until_ended(client, job_id: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := client.get(f"/api/jobs/{job_id}").json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, f"job {job_id} did not end in {timeout_s} s"
        time.sleep(0.5)
    return job


def ingested_cases() -> set[Path]:
    return set((load_settings().home / "cases").glob("job-*"))


@pytest.mark.parametrize("study", ["nifti_study", "dicom_study"])
def test_a_raw_study_zip_is_queued_whole_as_its_jobs_study(own_web_settings, request, study):
    zipped, _ = request.getfixturevalue(study)
    url = own_web_settings.database_url
    pid = new_patient(url, "Raw Upload", "left")
    with make_client(own_web_settings, job_workers=0) as c:  # queued, never run: ingest is not exercised here
        sign_in(c)
        job_id = job_id_of(post_upload(c, pid, zipped.name, zipped.read_bytes()))
        assert c.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
    folder = Path(job_study(url, job_id).case_ref)
    with zipfile.ZipFile(zipped) as archive:
        uploaded = {name for name in archive.namelist() if not name.endswith("/")}
    assert {p.relative_to(folder).as_posix() for p in files_under(folder)} == uploaded
    assert len(uploaded) > 100 or study == "nifti_study"  # a DICOM study has one file per slice
    assert job_options(folder.parent, url).accept_patient_mismatch is False


def test_the_checkbox_becomes_the_jobs_accept_patient_mismatch_option(own_web_settings, nifti_study):
    zipped, _ = nifti_study
    url = own_web_settings.database_url
    pid = new_patient(url, "Checked Box", "left")
    with make_client(own_web_settings, job_workers=0) as c:
        sign_in(c)
        assert 'name="accept_patient_mismatch"' in c.get(f"/patients/{pid}").text
        job_id = job_id_of(post_upload(c, pid, zipped.name, zipped.read_bytes(), accept_mismatch=True))
    assert job_options(Path(job_study(url, job_id).case_ref).parent, url).accept_patient_mismatch is True


def test_a_dicom_study_is_dated_by_its_study_date_and_a_typed_date_must_agree(own_web_settings, dicom_study):
    zipped, _ = dicom_study
    with zipfile.ZipFile(zipped) as archive:
        slice_file = next(name for name in archive.namelist() if name.endswith(".dcm"))
        taken = dicom_date(pydicom.dcmread(io.BytesIO(archive.read(slice_file))).StudyDate)
    url, data = own_web_settings.database_url, zipped.read_bytes()
    pid = new_patient(url, "Dated Study", "left")
    with make_client(own_web_settings, job_workers=0) as c:
        sign_in(c)
        r = post_upload(c, pid, zipped.name, data, study_date=(taken - timedelta(days=1)).isoformat())
        assert r.status_code == 400 and job_count(url) == 0
        assert f"study_date: {zipped.name} is a DICOM study dated {taken.isoformat()} (its StudyDate)" in r.text
        agreed = job_id_of(post_upload(c, pid, zipped.name, data, study_date=taken.isoformat()))
        untyped = job_id_of(post_upload(c, pid, zipped.name, data))
    assert job_study(url, agreed).study_date == taken == job_study(url, untyped).study_date


def test_hostile_or_imageless_zips_are_still_refused_with_one_line(client, web_settings, monkeypatch):
    before, files = job_count(web_settings.database_url), files_under(web_settings.data_dir)
    slices = {f"study/dicom/3/IM{i:05d}.dcm": b"" for i in range(MAX_ENTRIES + 1)}
    r = post_upload(client, 1, "many.zip", zip_bytes(slices))
    assert r.status_code == 400 and f"{MAX_ENTRIES + 1} entries, more than {MAX_ENTRIES}" in r.text
    r = post_upload(client, 1, "slip.zip", zip_bytes({"study/dicom/IM1.dcm": b"x", "study/../../IM2.dcm": b"x"}))
    assert r.status_code == 400 and "leaves the upload folder" in r.text
    r = post_upload(client, 1, "notes.zip", zip_bytes({"study/readme.txt": b"no images here"}))
    assert r.status_code == 400 and "notes.zip: no BraTS case, DICOM or NIfTI files found" in r.text
    monkeypatch.setattr("neurotriage.web.uploads.EXPANDED_FLOOR", 1 << 20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("study/IM1.dcm", bytes(4 << 20))  # 4 MB of zeros in a few kB
    r = post_upload(client, 1, "bomb.zip", buffer.getvalue())
    assert r.status_code == 400 and "possible zip bomb" in r.text
    assert job_count(web_settings.database_url) == before
    assert files_under(web_settings.data_dir) == files


def test_the_expansion_cap_has_a_floor_for_well_compressed_studies():
    assert expanded_limit(1000) == expanded_limit(0) >= 1024**3  # a small DICOM zip may expand far more than 8x
    assert expanded_limit(1024**3) == 8 * 1024**3  # a large upload keeps the ratio


def test_a_study_of_another_patient_fails_its_job_with_one_line_and_leaves_no_case(own_web_settings, dicom_study):
    zipped, _ = dicom_study
    pid = new_patient(own_web_settings.database_url, "Nobody Else", "left")  # the DICOM headers name another
    before = ingested_cases()
    with make_client(own_web_settings, job_workers=1) as c:
        sign_in(c)
        job = wait_until_ended(c, job_id_of(post_upload(c, pid, zipped.name, zipped.read_bytes())), 120)
    assert job["status"] == "failed" and job["error"].startswith(f"the study is not patient {pid}'s: "), job["error"]
    assert "\n" not in job["error"] and "Nobody Else" in job["error"]
    assert str(own_web_settings.data_dir) not in job["error"] and str(load_settings().home) not in job["error"]
    assert "read study" in {s["name"] for s in job["stages"]}  # ingest's stages reach the job board
    assert ingested_cases() == before


@pytest.mark.slow
def test_an_accepted_mismatch_runs_a_dicom_study_to_a_report_with_a_dicom_seg(own_web_settings, dicom_study, oracle):
    zipped, truth = dicom_study
    oracle.predict = lambda case, **_: load_seg(truth / f"{CASE}_seg.nii.gz", BRATS2020)  # no seg beside ingest's
    pid = new_patient(own_web_settings.database_url, "Nobody Else", "left")
    with make_client(own_web_settings, job_workers=1) as c:
        sign_in(c)
        job_id = job_id_of(post_upload(c, pid, zipped.name, zipped.read_bytes(), accept_mismatch=True))
        job = wait_until_ended(c, job_id, 300)
    assert job["status"] == "done", job["error"]
    assert INGEST_STAGES | {"segment", "report"} <= {s["name"] for s in job["stages"]}
    case_id = Path(job_study(own_web_settings.database_url, job_id).case_ref).name
    report = own_web_settings.data_dir / "jobs" / str(job_id) / "report"
    assert (report / "native" / f"{case_id}_seg.dcm").is_file()
    provenance = json.loads((report / "report.json").read_text())["provenance"]
    assert any("Nobody Else" in m for m in provenance["accepted_patient_mismatch"])
    assert (load_settings().home / "cases" / case_id / f"{case_id}_t1ce.nii.gz").is_file()
