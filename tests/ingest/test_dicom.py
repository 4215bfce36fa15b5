"""Reading a DICOM study folder's headers into series: geometry, grouping, identification and refusals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from neurotriage.errors import UserError
from neurotriage.ingest.dicom import (
    DicomSeries,
    declared_study_date,
    read_dicom_folder,
    scan_dicom_folder,
    study_patient,
)
from neurotriage.ingest.identify import identify

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
STUDY_UID = generate_uid()
FLAIR = {"ScanningSequence": ["SE", "IR"], "RepetitionTime": 9000, "EchoTime": 90, "InversionTime": 2500}
T2 = {"ScanningSequence": "SE", "RepetitionTime": 5000, "EchoTime": 100}
T1 = {"ScanningSequence": "SE", "RepetitionTime": 600, "EchoTime": 12}
ADC = {"ScanningSequence": "EP", "RepetitionTime": 5000, "EchoTime": 90, "ImageType": ["DERIVED", "PRIMARY", "ADC"]}


def dataset(sop_class: str = MR_IMAGE, *, patient: str = "MRN-1", study: str = STUDY_UID, **tags: object) -> Dataset:
    """The patient, study and image-pixel tags every fixture image carries, plus `tags`."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = patient, "Doe^Jane", "19610203"
    ds.StudyInstanceUID, ds.StudyDate = study, "20240517"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def write(ds: Dataset, path: Path, frames: int = 1) -> Path:
    """Save `ds` as a DICOM file with zero pixels for `frames` frames."""
    ds.PixelData = np.zeros((frames, int(ds.Rows), int(ds.Columns)), np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(
    folder: Path,
    number: int,
    description: str,
    tags: dict,
    *,
    slices: int = 12,
    gap: float = 5.5,
    orientation: tuple[float, ...] = AXIAL,
    **extra: object,
) -> list[Path]:
    """A single-frame series: one file per slice, `gap` mm apart along the slice normal, files in reverse order."""
    uid = generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.array([-3.6, -40.0, 20.0])
    return [
        write(
            dataset(
                SeriesInstanceUID=uid,
                SeriesNumber=number,
                SeriesDescription=description,
                InstanceNumber=i + 1,
                PixelSpacing=[0.9, 0.9],
                ImageOrientationPatient=list(orientation),
                ImagePositionPatient=[round(float(v), 4) for v in origin + i * gap * normal],
                **{"SliceThickness": gap, **tags, **extra},
            ),
            folder / f"S{number}_IM{slices - i:04d}.dcm",  # file names run against the slice order
        )
        for i in range(slices)
    ]


def write_study(root: Path) -> None:
    """A brain tumour study in nested folders: a localiser sharing a folder with the T2, four structurals, an ADC."""
    write_series(root / "PAT1" / "STUDY" / "MIXED", 1, "localizer", T1, slices=3, gap=10.0)
    write_series(root / "PAT1" / "STUDY" / "MIXED", 3, "T2_TSE_AX", T2)
    write_series(root / "PAT1" / "STUDY" / "S2", 2, "AX FLAIR", FLAIR)
    write_series(root / "PAT1" / "STUDY" / "S4" / "a", 4, "T1_SE_AX", T1)
    write_series(root / "PAT1" / "STUDY" / "S6", 6, "ep2d_diff_ADC", ADC)
    write_series(root / "PAT1" / "STUDY" / "S7", 7, "MRHR_T1_AX_POST_GAD", {**T1, "ContrastBolusAgent": "Gadovist"})
    (root / "PAT1" / "notes.txt").write_text("not DICOM", encoding="utf-8")
    (root / "PAT1" / "STUDY" / ".DS_Store").write_bytes(b"\0" * 300)


def test_a_nested_study_is_read_and_identified_end_to_end(tmp_path: Path) -> None:
    write_study(tmp_path)
    study = scan_dicom_folder(tmp_path)
    assert [s.series_number for s in study.series] == [1, 2, 3, 4, 6, 7]
    assert sorted(p.name for p in study.ignored) == [".DS_Store", "notes.txt"]
    by_number = {s.series_number: s for s in study.series}
    mixed = tmp_path / "PAT1" / "STUDY" / "MIXED"
    # Series that share a folder get converter-style names in it; a series alone gets its folder.
    assert by_number[1].source == mixed / "localizer_1"
    assert by_number[3].source == mixed / "T2_TSE_AX_3"
    assert by_number[4].source == tmp_path / "PAT1" / "STUDY" / "S4" / "a"
    assert by_number[3].shape == (8, 8, 12) and len(by_number[3].files) == 12
    assert by_number[2].inversion_time_ms == 2500 and by_number[2].scanning_sequence == ("SE", "IR")
    found = identify(read_dicom_folder(tmp_path))
    assert {seq: c.series_description for seq, c in found.sequences.items()} == {
        "flair": "AX FLAIR",
        "t1": "T1_SE_AX",
        "t1ce": "MRHR_T1_AX_POST_GAD",
        "t2": "T2_TSE_AX",
    }
    skipped = {s.series_description: s.reason for s in found.skipped}
    assert "localiser" in skipped["localizer"] and "derived" in skipped["ep2d_diff_ADC"]


def test_study_patient_comes_from_the_headers(tmp_path: Path) -> None:
    write_series(tmp_path, 3, "T2", T2, IssuerOfPatientID="HOSP")
    assert study_patient(tmp_path).model_dump() == {
        "patient_id": "MRN-1",
        "issuer": "HOSP",
        "patient_name": "Doe^Jane",
        "birth_date": date(1961, 2, 3),
        "study_date": date(2024, 5, 17),
    }


def test_the_declared_study_date_is_the_first_images_and_none_without_one(tmp_path: Path) -> None:
    (tmp_path / "0_notes.txt").write_text("not DICOM")
    report = dataset("1.2.840.10008.5.1.4.1.1.88.33", StudyDate="20200101")  # a structured report: not an image
    del report.Rows, report.Columns
    report.save_as(tmp_path / "1_sr.dcm", enforce_file_format=True)
    write_series(tmp_path / "images", 3, "T2", T2, slices=2)
    assert declared_study_date(tmp_path) == date(2024, 5, 17)
    assert declared_study_date(tmp_path / "empty") is None
    write(dataset(StudyDate="", SeriesInstanceUID=generate_uid()), tmp_path / "undated" / "1.dcm")
    assert declared_study_date(tmp_path / "undated") is None
    with pytest.warns(UserWarning, match="Invalid value for VR DA"):
        write(dataset(StudyDate="2024-99", SeriesInstanceUID=generate_uid()), tmp_path / "bad" / "1.dcm")
    assert declared_study_date(tmp_path / "bad") is None  # reading the study names the file


def test_slice_spacing_comes_from_positions_along_an_oblique_normal(tmp_path: Path) -> None:
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    oblique = (1.0, 0.0, 0.0, 0.0, c, s)
    # SliceThickness says 5.5 but the slices lie 4 mm apart: the positions win.
    write_series(tmp_path, 3, "T2", T2, slices=10, gap=4.0, orientation=oblique, SliceThickness=5.5)
    (series,) = read_dicom_folder(tmp_path)
    assert series.shape == (8, 8, 10)
    assert series.spacing == pytest.approx((0.9, 0.9, 4.0), abs=1e-3)


def test_without_positions_the_spacing_tags_are_used(tmp_path: Path) -> None:
    for path in write_series(tmp_path, 3, "T2", T2, slices=10, SpacingBetweenSlices=6.0):
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        write(ds, path)
    (series,) = read_dicom_folder(tmp_path)
    assert series.spacing == pytest.approx((0.9, 0.9, 6.0))


def test_repeated_positions_are_volumes(tmp_path: Path) -> None:
    files = write_series(tmp_path, 8, "perfusion", T2, slices=12, gap=5.0)
    for path in files[6:]:  # the second half repeats the first half's positions: two volumes of 6 slices
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [-3.6, -40.0, 20.0 + (int(ds.InstanceNumber) - 7) * 5.0]
        write(ds, path)
    (series,) = read_dicom_folder(tmp_path)
    assert series.shape == (8, 8, 6, 2) and series.n_volumes == 2


def write_enhanced(path: Path, frames: int, gap: float = 3.0, **tags: object) -> Path:
    """An enhanced MR image: one file, `frames` axial frames `gap` mm apart, timings in functional groups."""
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = [0.5, 0.5]
    shared.PixelMeasuresSequence[0].SliceThickness = 1.0
    shared.PlaneOrientationSequence = Sequence([Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = list(AXIAL)
    shared.MRTimingAndRelatedParametersSequence = Sequence([Dataset()])
    shared.MRTimingAndRelatedParametersSequence[0].RepetitionTime = 2300
    shared.MREchoSequence = Sequence([Dataset()])
    shared.MREchoSequence[0].EffectiveEchoTime = 3.0
    per_frame = []
    for i in range(frames):
        frame = Dataset()
        frame.PlanePositionSequence = Sequence([Dataset()])
        frame.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, i * gap]
        per_frame.append(frame)
    ds = dataset(
        ENHANCED_MR_IMAGE,
        SeriesInstanceUID=generate_uid(),
        SeriesNumber=5,
        SeriesDescription="T1 MPRAGE",
        NumberOfFrames=frames,
        SharedFunctionalGroupsSequence=Sequence([shared]),
        PerFrameFunctionalGroupsSequence=Sequence(per_frame),
        **tags,
    )
    return write(ds, path, frames)


def test_an_enhanced_multi_frame_series_counts_its_frames(tmp_path: Path) -> None:
    write_enhanced(tmp_path / "enhanced" / "mr.dcm", frames=14)
    (series,) = read_dicom_folder(tmp_path)
    assert series.shape == (8, 8, 14)
    assert series.spacing == pytest.approx((0.5, 0.5, 3.0))
    assert (series.repetition_time_ms, series.echo_time_ms) == (2300, 3.0)


def test_only_headers_are_read_so_truncated_pixel_data_still_reads(tmp_path: Path) -> None:
    files = write_series(tmp_path, 3, "T2", T2)
    for path in files:
        path.write_bytes(path.read_bytes()[:-100])  # cut into the 128 bytes of pixel data
    (series,) = read_dicom_folder(tmp_path)
    assert series.shape == (8, 8, 12)


def refusal(folder: Path) -> str:
    with pytest.raises(UserError) as caught:
        read_dicom_folder(folder)
    assert "\n" not in caught.value.message
    return caught.value.message


def test_two_patients_are_refused(tmp_path: Path) -> None:
    write_series(tmp_path / "a", 3, "T2", T2)
    write_series(tmp_path / "b", 4, "T1", T1, patient="MRN-2")
    message = refusal(tmp_path)
    assert "PatientID 'MRN-2' differs from 'MRN-1'" in message and str(tmp_path / "b") in message


def test_two_studies_are_refused(tmp_path: Path) -> None:
    write_series(tmp_path / "a", 3, "T2", T2)
    write_series(tmp_path / "b", 4, "T1", T1, study=generate_uid())
    assert "StudyInstanceUID" in refusal(tmp_path)


@pytest.mark.parametrize("cut", [140, 400], ids=["header-gone", "header-cut"])
def test_a_corrupt_dicom_file_is_named(tmp_path: Path, cut: int) -> None:
    files = write_series(tmp_path, 3, "T2", T2)
    files[4].write_bytes(files[4].read_bytes()[:cut])
    message = refusal(tmp_path)
    assert message.startswith(f"{files[4]}: a corrupt DICOM")


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_garbage_after_the_dicom_preamble_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 64)
    assert refusal(tmp_path).startswith(f"{path}: a corrupt DICOM")


def test_a_folder_without_dicom_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    assert refusal(tmp_path) == f"{tmp_path}: no DICOM images in this folder (1 other files)"


@pytest.mark.parametrize(
    ("frames", "bits", "words"),
    [(1025, 8, "over 1024x1024x1024 voxels"), (600, 32, "over 2 GB of pixel data")],
    ids=["voxels", "bytes"],
)
def test_an_oversized_series_is_refused_from_its_header(tmp_path: Path, frames: int, bits: int, words: str) -> None:
    # The header declares 1024x1024 pixels per frame; the file holds none of them.
    ds = dataset(
        ENHANCED_MR_IMAGE,
        SeriesInstanceUID=generate_uid(),
        SeriesNumber=9,
        SeriesDescription="huge",
        NumberOfFrames=frames,
        BitsAllocated=bits,
        BitsStored=bits,
        HighBit=bits - 1,
    )
    ds.Rows = ds.Columns = 1024
    ds.save_as(tmp_path / "huge.dcm", enforce_file_format=True)
    message = refusal(tmp_path)
    assert message == f"{tmp_path}: the series declares 1024x1024 pixels, {frames} frames, {words}"


def test_a_dicom_series_is_a_series_info_with_its_uid_and_files(tmp_path: Path) -> None:
    files = write_series(tmp_path, 3, "T2", T2)
    (series,) = read_dicom_folder(tmp_path)
    assert isinstance(series, DicomSeries)
    assert sorted(series.files) == sorted(files) and series.series_uid
