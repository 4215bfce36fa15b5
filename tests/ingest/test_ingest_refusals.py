"""Bad raw input: one line naming the file and the problem, exit 2, nothing left in CASE_DIR."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from neurotriage.cli import main
from neurotriage.diagnosis.raw import is_raw_study
from neurotriage.errors import UserError
from neurotriage.ingest import qc
from neurotriage.ingest.dicom import StudyPatient
from neurotriage.ingest.patient_match import patient_mismatches
from neurotriage.ingest.source import open_study, unzip

from .conftest import SYNTH_CASE


@pytest.fixture
def study(synth_dicom_root: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic DICOM study to break."""
    return Path(shutil.copytree(synth_dicom_root / SYNTH_CASE, tmp_path / "study"))


def series_folders(study: Path) -> dict[str, Path]:
    """Series description -> folder."""
    found = {}
    for folder in sorted((study / "dicom").iterdir()):
        found[str(pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).SeriesDescription)] = folder
    return found


def refused(capsys: pytest.CaptureFixture[str], study: Path, case_dir: Path, *flags: str) -> str:
    """Run ingest expecting a refusal; returns its one line."""
    capsys.readouterr()
    assert main(["ingest", str(study), "--out", str(case_dir), *flags]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]  # the others are finished stages' lines
    assert len(errors) == 1, err
    assert not case_dir.exists() or not any(case_dir.iterdir())
    return errors[0]


def test_missing_sequence(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flair = next(folder for name, folder in series_folders(study).items() if "FLAIR" in name.upper())
    shutil.rmtree(flair)
    assert "flair" in refused(capsys, study, tmp_path / "case")


def test_two_patients(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = next(iter(series_folders(study).values()))
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.PatientID = "SOMEONE-ELSE"
        ds.save_as(path)
    assert "patient" in refused(capsys, study, tmp_path / "case")


def test_only_a_localiser(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, folder in series_folders(study).items():
        if "LOCALIZER" not in name.upper():
            shutil.rmtree(folder)
    line = refused(capsys, study, tmp_path / "case")
    assert "no FLAIR series" in line and "localizer in 1 (localiser or scout" in line


def test_another_body_part(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t2 = next(folder for name, folder in series_folders(study).items() if name.upper() == "AX_T2")
    for path in t2.iterdir():
        ds = pydicom.dcmread(path)
        ds.BodyPartExamined = "KNEE"
        ds.save_as(path)
    line = refused(capsys, study, tmp_path / "case")
    assert "no T2 series" in line and "another body part: BodyPartExamined KNEE" in line


def test_corrupt_dicom(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    victim = next(next(iter(series_folders(study).values())).iterdir())
    victim.write_bytes(victim.read_bytes()[:300])
    assert victim.name in refused(capsys, study, tmp_path / "case")


def nifti_study(folder: Path, voxels: np.ndarray) -> Path:
    """A converter-named NIfTI study whose four series all hold `voxels`."""
    folder.mkdir()
    for name in ("AX_FLAIR_2", "T1_AX_3", "T1_AX_POST_GAD_5", "AX_T2_4"):
        nib.save(nib.Nifti1Image(voxels, np.eye(4)), str(folder / f"{name}.nii.gz"))
    return folder


def test_single_slice_nifti(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = nifti_study(tmp_path / "nifti", np.ones((64, 64, 1), np.float32))
    assert "slices" in refused(capsys, study, tmp_path / "case")


def test_a_series_without_signal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = nifti_study(tmp_path / "nifti", np.zeros((64, 64, 24), np.float32))
    assert "has no image in it" in refused(capsys, study, tmp_path / "case")


def test_not_empty_case_dir_is_kept(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    (case_dir / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["ingest", str(study), "--out", str(case_dir)]) == 2
    assert "--out" in capsys.readouterr().err
    assert (case_dir / "notes.txt").read_text() == "mine"


def test_zip_member_outside_its_folder_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.dcm", b"x")
    with pytest.raises(UserError, match="outside its folder"):
        unzip(archive, tmp_path / "unpacked")
    assert not (tmp_path / "escape.dcm").exists()


def test_zip_of_a_study_opens_like_the_folder(study: Path, tmp_path: Path) -> None:
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in study.rglob("*"):
            if path.is_file():
                zf.write(path, Path("export") / path.relative_to(study))
    (tmp_path / "unpacked").mkdir()
    from_zip = open_study(archive, tmp_path / "unpacked")
    from_folder = open_study(study, tmp_path / "unused")
    assert from_zip.kind == from_folder.kind == "dicom"
    assert [s.series_description for s in from_zip.series] == [s.series_description for s in from_folder.series]
    assert from_zip.patient == from_folder.patient


def test_quality_gate_fails_a_misplaced_brain() -> None:
    from neurotriage.imaging.sri24 import template_and_masks

    template = template_and_masks()["template"].astype(np.float32)
    brain = template > 0
    assert qc.assess(template, brain, 1400).verdict == "pass"
    shifted = np.roll(template, 25, axis=1)
    check = qc.assess(shifted, shifted > 0, 1400)
    assert check.verdict == "fail" and "similarity" in check.reasons[0]
    assert qc.assess(template, brain, 450).verdict == "fail"


def test_patient_match_by_family_name_and_birth_date() -> None:
    from datetime import date

    study = StudyPatient(patient_id="1", patient_name="DOE^JANE", birth_date=date(1961, 2, 3))
    assert patient_mismatches(study, "Jane Doe", date(1961, 2, 3)) == []
    assert patient_mismatches(study, "Jane Döe", None) == []
    assert len(patient_mismatches(study, "John Smith", date(1961, 2, 3))) == 1
    assert len(patient_mismatches(study, "Jane Doe", date(1971, 2, 3))) == 1
    assert patient_mismatches(None, "Anyone", None) == []


def test_patient_match_by_mrn_within_one_issuer() -> None:
    study = StudyPatient(patient_id="M1", issuer="HOSP", patient_name="DOE^JANE")
    assert patient_mismatches(study, "Jane Doe", None, "M1", "HOSP") == []
    assert patient_mismatches(study, "Jane Doe", None, "M1", None) == []
    assert patient_mismatches(study, "Jane Doe", None, None, None) == []
    assert patient_mismatches(study, "Jane Doe", None, "M2", "CLINIC") == []  # another register's number
    assert patient_mismatches(study, "Jane Doe", None, "M2", "HOSP") == [
        "MRN 'M1' (issuer 'HOSP') in the study, 'M2' (issuer 'HOSP') on record"
    ]
    no_issuer = StudyPatient(patient_id="M1", patient_name="DOE^JANE")
    assert len(patient_mismatches(no_issuer, "Jane Doe", None, "M2", "HOSP")) == 1


def test_patient_guard_refuses_a_study_of_another_mrn() -> None:
    from neurotriage.clinical.snapshot import PatientSnapshot
    from neurotriage.diagnosis.raw import patient_guard

    patient = PatientSnapshot(id=4, name="Jane Doe", mrn="M2", mrn_issuer="HOSP")
    study = StudyPatient(patient_id="M1", issuer="HOSP", patient_name="DOE^JANE")
    with pytest.raises(UserError, match="the study is not patient 4's: MRN 'M1' .*in the study, 'M2' .*on record"):
        patient_guard(patient, False, [])(study)
    accepted: list[str] = []
    patient_guard(patient, True, accepted)(study)
    assert accepted == ["MRN 'M1' (issuer 'HOSP') in the study, 'M2' (issuer 'HOSP') on record"]


def test_wrong_patient_stops_diagnose_before_ingest(
    synth_dicom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    assert main(["db", "init"]) == 0
    assert main(["patient", "add", "--name", "John Smith", "--birth-date", "1970-01-01"]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(synth_dicom_root / SYNTH_CASE), "--patient", "1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]  # the rest: stage lines
    assert len(errors) == 1 and "not patient 1's" in errors[0] and "--accept-patient-mismatch" in errors[0]
    assert not (tmp_path / "home" / "cases" / SYNTH_CASE).exists()


def test_raw_study_detection(synth_dicom_root: Path, tmp_path: Path, make_case) -> None:
    assert is_raw_study(synth_dicom_root / SYNTH_CASE)
    assert not is_raw_study(make_case())


def test_raw_case_folder_never_replaces_another_inputs_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from neurotriage.diagnosis.raw import raw_case_dir

    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    first, second = tmp_path / "a" / "DICOM", tmp_path / "b" / "DICOM"
    assert raw_case_dir(first) == tmp_path / "home" / "cases" / "DICOM"
    record = tmp_path / "home" / "cases" / "DICOM" / "ingest" / "ingest.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"input": str(first.resolve())}))
    assert raw_case_dir(first) == tmp_path / "home" / "cases" / "DICOM"  # the same study: re-ingested in place
    assert raw_case_dir(second) == tmp_path / "home" / "cases" / "DICOM-2"
