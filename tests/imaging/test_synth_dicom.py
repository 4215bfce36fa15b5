"""Synthetic raw studies as DICOM: tags, geometry (LPS against the NIfTI's RAS), pixels and reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from neurotriage.cli import main
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.synth_dicom import study_identity, write_dicom_series
from neurotriage.imaging.synth_series import AXIAL_CODES, SAGITTAL_CODES, SeriesPlan

# Cohort seed 1, case 0: 5.5 mm axial series in LPS, RPS (a left-right flip of LPS) and RAI, a 1 mm sagittal
# T1ce in PIL, and a localiser.
SEED = 1
CASE = "SYN_0000"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
STUDY_TAGS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "FrameOfReferenceUID")
SERIES_TAGS = (
    "SeriesInstanceUID",
    "SeriesDescription",
    "ProtocolName",
    "SeriesNumber",
    "SeriesTime",
    "AcquisitionTime",
    "ScanningSequence",
    "SequenceVariant",
    "SequenceName",
    "RepetitionTime",
    "EchoTime",
    "MagneticFieldStrength",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelSpacing",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "RescaleSlope",
    "RescaleIntercept",
)


def _synth(out: Path, *flags: str) -> dict:
    assert main(["synth", str(out), "--n", "1", "--seed", str(SEED), *flags]) == 0
    return json.loads((out / "truth" / CASE / "truth.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One DICOM raw study written by the CLI, and its truth."""
    out = tmp_path_factory.mktemp("dicom")
    return out, _synth(out, "--dicom")


def _read_series(folder: Path) -> list[pydicom.Dataset]:
    return sorted((pydicom.dcmread(p) for p in folder.glob("*.dcm")), key=lambda ds: int(ds.InstanceNumber))


def _sitk_ras_affine(image: sitk.Image) -> np.ndarray:
    """Voxel (x, y, z index as SimpleITK counts) -> RAS world mm of a SimpleITK (LPS) image."""
    affine = np.eye(4)
    affine[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    affine[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ affine


def _assert_dicom_matches_nifti(folder: Path, nifti: nib.Nifti1Image) -> None:
    """Slice positions follow the NIfTI affine, and SimpleITK's LPS volume has the NIfTI's value at every point."""
    slices = _read_series(folder)
    assert len(slices) == nifti.shape[2]
    for k, ds in enumerate(slices):
        ras = LPS_TO_RAS[:3, :3] @ np.array(ds.ImagePositionPatient, float)
        np.testing.assert_allclose(ras, nifti.affine[:3, :3] @ [0, 0, k] + nifti.affine[:3, 3], atol=1e-3)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    values = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # SimpleITK arrays are (z, y, x)
    index = np.indices(values.shape).reshape(3, -1).T.astype(float)
    ras = index @ _sitk_ras_affine(image)[:3, :3].T + _sitk_ras_affine(image)[:3, 3]
    nifti_index = (ras - nifti.affine[:3, 3]) @ np.linalg.inv(nifti.affine[:3, :3]).T
    rounded = np.rint(nifti_index)
    np.testing.assert_allclose(nifti_index, rounded, atol=1e-3)  # same physical points, grid for grid
    expected = np.asarray(nifti.dataobj)[tuple(rounded.astype(int).T)]
    np.testing.assert_array_equal(values.reshape(-1), expected)


def write_small_series(folder: Path, codes: str) -> Path:
    """A small random series in orientation `codes`: DICOM in folder/dicom, and the path of its NIfTI in `folder`."""
    plan = SeriesPlan("t2", "AX_T2", 5, codes, (0.9, 0.8, 3.0), (12, 10, 6), {"AcquisitionTime": "10:00:00.000000"})
    plan.sidecar |= {"RepetitionTime": 4.5, "EchoTime": 0.1, "ScanningSequence": "SE", "MRAcquisitionType": "2D"}
    affine = plan.affine(np.array([12.0, -30.0, 40.0]))
    image = np.random.default_rng(0).integers(0, 4000, plan.shape).astype(np.int16)
    nifti = write_nifti(image, affine, folder / plan.filename)
    identity = study_identity(np.random.default_rng(0))
    write_dicom_series(plan, affine, image, identity, "095500.000000", folder / "dicom")
    return nifti


@pytest.mark.parametrize("codes", [*AXIAL_CODES, *SAGITTAL_CODES])
def test_a_series_in_any_orientation_reads_back_at_the_nifti_points(tmp_path: Path, codes: str) -> None:
    """A small series per orientation code: DICOM geometry and values against the NIfTI of the same array."""
    nifti = nib.load(write_small_series(tmp_path, codes))
    _assert_dicom_matches_nifti(tmp_path / "dicom", nifti)


def test_layout_follows_the_truth_series_map(study) -> None:
    out, truth = study
    folders = sorted(p.relative_to(out / CASE).as_posix() for p in (out / CASE / "dicom").iterdir())
    assert folders == sorted(s["dicom"] for s in truth["series"].values())
    assert not list((out / CASE).glob("*.nii.gz")) and not list((out / CASE).glob("*.json"))
    for s in truth["series"].values():
        slices = _read_series(out / CASE / s["dicom"])
        assert len(slices) == s["shape"][2]
        assert {int(ds.SeriesNumber) for ds in slices} == {s["series_number"]}
        assert {ds.SeriesDescription for ds in slices} == {s["series_description"]}
        assert [int(ds.InstanceNumber) for ds in slices] == list(range(1, s["shape"][2] + 1))


def test_tags_say_what_a_scanner_writes(study) -> None:
    out, truth = study
    firsts = {}
    for s in truth["series"].values():
        slices = _read_series(out / CASE / s["dicom"])
        ds = slices[0]
        for tag in (*STUDY_TAGS, *SERIES_TAGS):
            assert tag in ds, (s["dicom"], tag)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == pydicom.uid.MRImageStorage and ds.Modality == "MR"
        assert ds.BodyPartExamined == "HEAD" and list(ds.ImageType)[:2] == ["ORIGINAL", "PRIMARY"]
        assert (ds.BitsAllocated, ds.PixelRepresentation) == (16, 0)
        assert (ds.Rows, ds.Columns) == (s["shape"][1], s["shape"][0])
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], s["voxel_size_mm"][1::-1])
        assert float(ds.SliceThickness) == s["slice_thickness_mm"]
        three_d = ds.MRAcquisitionType == "3D"
        assert ("InversionTime" in ds) == (s["sequence"] == "flair" or three_d)
        assert ("ContrastBolusAgent" in ds) == (s["sequence"] == "t1ce")
        assert len({ds.SOPInstanceUID for ds in slices}) == len(slices)
        assert len({ds.SeriesInstanceUID for ds in slices}) == 1
        firsts[s["series_number"]] = ds
    assert len({ds.SeriesInstanceUID for ds in firsts.values()}) == len(firsts)
    for tag in STUDY_TAGS:
        assert len({str(ds[tag].value) for ds in firsts.values()}) == 1, tag
    ds = firsts[min(firsts)]
    patient = truth["dicom"]
    assert (ds.PatientID, str(ds.PatientName), ds.PatientBirthDate) == (
        patient["patient_id"],
        patient["patient_name"],
        patient["patient_birth_date"],
    )
    assert ds.StudyInstanceUID == patient["study_instance_uid"]
    times = [firsts[n].SeriesTime for n in sorted(firsts)]
    assert times == sorted(times) and len(set(times)) == len(times)


@pytest.mark.slow
def test_every_series_matches_the_nifti_study_from_the_same_seed(study, tmp_path: Path) -> None:
    """Geometry and values of each DICOM series equal the NIfTI series `--raw` writes from the same seed."""
    out, truth = study
    assert _synth(tmp_path, "--raw")["series"].keys() == truth["series"].keys()
    for name, s in truth["series"].items():
        _assert_dicom_matches_nifti(out / CASE / s["dicom"], nib.load(tmp_path / CASE / name))


@pytest.mark.slow
def test_reruns_are_byte_identical(study, tmp_path: Path) -> None:
    out, _ = study
    _synth(tmp_path, "--dicom")
    first = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    again = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert first == again
    for rel in first:
        assert (out / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel


def test_preview_is_refused_with_dicom(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "out"), "--n", "1", "--dicom", "--preview"]) == 2
    assert "--preview" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
