"""Writing a label map on a DICOM series' grid as a DICOM SEG: read back with highdicom (references, pixels per
source slice or frame, copied patient and study, segment codes), empty maps, refusals, atomic writes, dciodvfy."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from neurotriage import __version__
from neurotriage.errors import UserError
from neurotriage.imaging.labels import EDEMA, ENHANCING, LEGEND_NAMES, NECROTIC_CORE
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_seg import CONTENT_DESCRIPTION, SERIES_DESCRIPTION, write_dicom_seg
from neurotriage.ingest.dicom_volume import DicomVolume, load_dicom_volume

from .conftest import SYNTH_CASE
from .test_dicom_volume import only_series, write_shuffled_enhanced

T1_SERIES = 3  # seed 1's axial T1: 256 x 256 x 33 slices of 5.5 mm
COPIED_TAGS = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "FrameOfReferenceUID",
)


@pytest.fixture(scope="module")
def t1(synth_dicom_root: Path) -> tuple[DicomVolume, str]:
    """The synthetic study's axial T1 as a volume, and its series UID."""
    (series,) = [s for s in scan_dicom_folder(synth_dicom_root / SYNTH_CASE).series if s.series_number == T1_SERIES]
    return load_dicom_volume(series), series.series_uid


def tumour(shape: tuple[int, ...]) -> np.ndarray:
    """Nested internal labels: edema around enhancing tumour around a necrotic core, off-centre on every axis."""
    z, y, x = np.indices(shape)
    distance = np.sqrt(((z - shape[0] // 3) * 5.5) ** 2 + (y - 120.0) ** 2 + (x - 90.0) ** 2)
    labels = np.zeros(shape, np.uint8)
    labels[distance < 24] = EDEMA
    labels[distance < 14] = ENHANCING
    labels[distance < 7] = NECROTIC_CORE
    return labels


def sop_uids(volume: DicomVolume) -> list[str]:
    return [pydicom.dcmread(f.path, stop_before_pixels=True).SOPInstanceUID for f in volume.frames]


def test_every_segment_reads_back_on_its_source_slices(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    volume, series_uid = t1
    labels = tumour(volume.image.GetSize()[::-1])
    path = write_dicom_seg(labels, volume, tmp_path / "native" / "case_seg.dcm")
    assert path == tmp_path / "native" / "case_seg.dcm" and sorted(tmp_path.rglob("*")) == [path.parent, path]
    seg = hd.seg.segread(path)
    uids = sop_uids(volume)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series_uid
    assert {sop for _, _, sop in seg.get_source_image_uids()} == set(uids)
    assert {
        item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    } == set(uids)
    pixels = seg.get_pixels_by_source_instance(uids, assert_missing_frames_are_empty=True)
    assert pixels.shape == (*labels.shape, 3)
    for number, label in enumerate((NECROTIC_CORE, EDEMA, ENHANCING), start=1):
        assert (labels == label).any()
        np.testing.assert_array_equal(pixels[..., number - 1], labels == label)
    source = pydicom.dcmread(volume.frames[0].path, stop_before_pixels=True)
    for tag in COPIED_TAGS:
        assert seg[tag].value == source[tag].value, tag
    assert (seg.SeriesDescription, seg.ContentDescription) == (SERIES_DESCRIPTION, CONTENT_DESCRIPTION)
    assert seg.SegmentationType == "BINARY" and seg.SeriesInstanceUID != series_uid


def test_segments_are_named_coded_and_credited(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    volume, _ = t1
    seg = hd.seg.segread(write_dicom_seg(tumour(volume.image.GetSize()[::-1]), volume, tmp_path / "seg.dcm"))
    descriptions = [seg.get_segment_description(n) for n in seg.segment_numbers]
    assert [d.segment_label for d in descriptions] == [LEGEND_NAMES[label] for label in (1, 2, 3)]
    assert [d.segmented_property_type for d in descriptions] == [
        codes.SCT.Necrosis,
        codes.SCT.Edema,
        codes.cid7151.EnhancingLesion,
    ]
    assert {d.segmented_property_category for d in descriptions} == {codes.SCT.MorphologicallyAbnormalStructure}
    for description in descriptions:
        assert description.algorithm_type == hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
        assert (
            description.algorithm_identification[0].AlgorithmName,
            description.algorithm_identification[0].AlgorithmVersion,
        ) == (
            "neurotriage",
            __version__,
        )
    assert seg.SoftwareVersions == __version__


def test_an_empty_label_map_still_describes_every_segment(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    volume, _ = t1
    labels = np.zeros(volume.image.GetSize()[::-1], np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # highdicom warns when it has to keep frames it was told to omit
        seg = hd.seg.segread(write_dicom_seg(labels, volume, tmp_path / "seg.dcm"))
    assert seg.number_of_segments == 3 and seg.NumberOfFrames == 3 * labels.shape[0]
    assert not seg.get_pixels_by_source_instance(sop_uids(volume)).any()


def test_the_described_labels_are_the_segments(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    volume, _ = t1
    labels = tumour(volume.image.GetSize()[::-1])
    with pytest.raises(ValueError, match=r"label values \[1, 3\] have no segment name"):
        write_dicom_seg(labels, volume, tmp_path / "seg.dcm", label_names={EDEMA: "oedema"})
    labels[labels != EDEMA] = 0
    seg = hd.seg.segread(write_dicom_seg(labels, volume, tmp_path / "seg.dcm", label_names={EDEMA: "oedema"}))
    assert seg.get_segment_description(1).segment_label == "oedema" and seg.number_of_segments == 1
    pixels = seg.get_pixels_by_source_instance(sop_uids(volume), assert_missing_frames_are_empty=True)
    np.testing.assert_array_equal(pixels[..., 0], labels == EDEMA)


def test_labels_off_the_volumes_grid_are_refused(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    volume, _ = t1
    with pytest.raises(ValueError, match=r"labels of shape \(33, 256, 255\) are not on the volume's grid"):
        write_dicom_seg(np.zeros((33, 256, 255), np.uint8), volume, tmp_path / "seg.dcm")
    assert not list(tmp_path.iterdir())


def test_a_multi_frame_source_is_referenced_frame_by_frame(tmp_path: Path) -> None:
    path = tmp_path / "enhanced" / "mr.dcm"
    write_shuffled_enhanced(path, (3, 0, 5, 1, 4, 2), FrameOfReferenceUID=generate_uid())
    volume = load_dicom_volume(only_series(tmp_path / "enhanced"))
    labels = np.zeros(volume.image.GetSize()[::-1], np.uint8)
    labels[1, 2:4, 3:6] = ENHANCING
    labels[2:5, 1:3, 1:3] = EDEMA
    seg = hd.seg.segread(write_dicom_seg(labels, volume, tmp_path / "seg.dcm"))
    source = pydicom.dcmread(path, stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert "PatientSex" not in source and seg.PatientSex == ""  # a type 2 tag the source lacks is copied empty
    frames = [f.frame for f in volume.frames]
    pixels = seg.get_pixels_by_source_frame(
        source.SOPInstanceUID, frames, combine_segments=True, assert_missing_frames_are_empty=True
    )
    np.testing.assert_array_equal(pixels, np.select([labels == EDEMA, labels == ENHANCING], [2, 3], 0))


def test_a_series_of_several_multi_frame_files_is_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "enhanced" / "a.dcm", tmp_path / "enhanced" / "b.dcm"
    write_shuffled_enhanced(first, (0, 2, 4))
    write_shuffled_enhanced(second, (1, 3, 5))
    ds = pydicom.dcmread(second)  # the same series as the first file, in the gaps between its frames
    ds.SeriesInstanceUID = pydicom.dcmread(first).SeriesInstanceUID
    ds.save_as(second, enforce_file_format=True)
    volume = load_dicom_volume(only_series(tmp_path / "enhanced"))
    assert [(f.path.name, f.frame) for f in volume.frames] == [(p.name, i) for i in (1, 2, 3) for p in (first, second)]
    with pytest.raises(UserError, match="spreads over 2 files of which some are multi-frame"):
        write_dicom_seg(np.zeros((6, 6, 7), np.uint8), volume, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_a_failed_write_leaves_nothing(t1: tuple[DicomVolume, str], tmp_path: Path, monkeypatch) -> None:
    volume, _ = t1

    def half_written(self, path, **kwargs) -> None:
        Path(path).write_bytes(b"DICM half")
        raise OSError("disk full")

    monkeypatch.setattr(hd.seg.Segmentation, "save_as", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_dicom_seg(tumour(volume.image.GetSize()[::-1]), volume, tmp_path / "seg.dcm")
    assert not list(tmp_path.iterdir())


def test_dciodvfy_finds_no_error(t1: tuple[DicomVolume, str], tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        missing = "dciodvfy (Debian's dicom3tools) is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    volume, _ = t1
    for name, labels in (
        ("tumour", tumour(volume.image.GetSize()[::-1])),
        ("empty", np.zeros((33, 256, 256), np.uint8)),
    ):
        path = write_dicom_seg(labels, volume, tmp_path / f"{name}.dcm")
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        output = report.stdout + report.stderr
        assert output.splitlines()[0] == "Segmentation", output
        assert not [line for line in output.splitlines() if line.startswith(("Error", "Warning"))], output
