"""A DICOM series' pixels as one volume: against SimpleITK's series reader and the NIfTI of the same acquisition,
enhanced multi-frame objects, the modality rescale, and the series that are not one even stack."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.imaging.synth_series import AXIAL_CODES, SAGITTAL_CODES
from neurotriage.ingest.dicom import DicomSeries, read_dicom_folder, scan_dicom_folder
from neurotriage.ingest.dicom_volume import DicomVolume, SourceFrame, load_dicom_volume

from ..imaging.test_synth_dicom import write_small_series
from .conftest import SYNTH_CASE, SYNTH_SEED
from .test_dicom import AXIAL, T2, dataset, write, write_enhanced, write_series

ENHANCED_SLOPE, ENHANCED_INTERCEPT = 2.0, -10.0


def only_series(folder: Path) -> DicomSeries:
    (series,) = read_dicom_folder(folder)
    assert isinstance(series, DicomSeries)
    return series


def series_reader(files: list[str] | tuple[str, ...]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    return reader.Execute()


def assert_same_volume(image: sitk.Image, reference: sitk.Image, atol: float = 1e-6) -> None:
    """Same grid in LPS (origin, spacing, direction) and the same value at every voxel."""
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=atol)
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=atol)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))


def assert_matches_nifti(volume: DicomVolume, nifti: Path) -> None:
    """The volume equals the NIfTI image reoriented to the volume's axes (SimpleITK reads NIfTI into LPS too)."""
    code = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(volume.image.GetDirection())
    reference = sitk.Cast(sitk.DICOMOrient(sitk.ReadImage(str(nifti)), code), sitk.sitkFloat32)
    assert_same_volume(volume.image, reference, atol=1e-3)


def restyle(paths: list[Path], rows: int, columns: int, seed: int = 0, **tags: object) -> np.ndarray:
    """Give every file of a single-frame series `rows` x `columns` random pixels and `tags`; the pixels by file."""
    pixels = np.random.default_rng(seed).integers(0, 4000, (len(paths), rows, columns)).astype(np.uint16)
    for path, frame in zip(paths, pixels, strict=True):
        ds = pydicom.dcmread(path)
        ds.Rows, ds.Columns, ds.PixelData = rows, columns, frame.tobytes()
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return pixels


def write_shuffled_enhanced(path: Path, order: tuple[int, ...], gap: float = 3.0, **tags: object) -> np.ndarray:
    """An enhanced MR object whose frame i lies at slice order[i], rescaled 2x - 10 (frame 1 by its own 1x + 5).

    Returns the stored pixels, frame by frame."""
    write_enhanced(path, frames=len(order), gap=gap, Rows=6, Columns=7, **tags)
    ds = pydicom.dcmread(path)
    stored = np.random.default_rng(1).integers(0, 4000, (len(order), 6, 7)).astype(np.uint16)
    ds.PixelData = stored.tobytes()
    for frame, k in zip(ds.PerFrameFunctionalGroupsSequence, order, strict=True):
        frame.PlanePositionSequence[0].ImagePositionPatient = [0.0, 0.0, k * gap]
    ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence = Sequence(
        [_rescale(ENHANCED_SLOPE, ENHANCED_INTERCEPT)]
    )
    ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence = Sequence([_rescale(1, 5)])
    ds.save_as(path, enforce_file_format=True)
    return stored


def _rescale(slope: float, intercept: float) -> Dataset:
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, intercept, "US"
    return item


def test_every_synthetic_series_equals_simpleitks_series_reader(synth_dicom_root: Path) -> None:
    study = scan_dicom_folder(synth_dicom_root / SYNTH_CASE)
    assert len(study.series) == 5  # a localiser, axial series in three orientations and a sagittal T1ce
    for series in study.series:
        volume = load_dicom_volume(series)
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series.source))
        assert volume.image.GetPixelID() == sitk.sitkFloat32
        assert_same_volume(volume.image, sitk.Cast(series_reader(files), sitk.sitkFloat32))
        assert volume.frames == tuple(SourceFrame(Path(f), None) for f in files)


@pytest.mark.parametrize("codes", [*AXIAL_CODES, *SAGITTAL_CODES])
def test_a_series_in_any_orientation_equals_the_nifti_of_the_same_array(tmp_path: Path, codes: str) -> None:
    nifti = write_small_series(tmp_path, codes)
    assert_matches_nifti(load_dicom_volume(only_series(tmp_path / "dicom")), nifti)


@pytest.mark.slow
def test_the_synthetic_study_equals_the_nifti_study_of_the_same_seed(synth_dicom_root: Path, tmp_path: Path) -> None:
    assert main(["synth", str(tmp_path), "--n", "1", "--seed", str(SYNTH_SEED), "--raw"]) == 0
    truth = json.loads((synth_dicom_root / "truth" / SYNTH_CASE / "truth.json").read_text())
    by_folder = {s.source: s for s in scan_dicom_folder(synth_dicom_root / SYNTH_CASE).series}
    for name, s in truth["series"].items():
        volume = load_dicom_volume(by_folder[synth_dicom_root / SYNTH_CASE / s["dicom"]])
        assert_matches_nifti(volume, tmp_path / SYNTH_CASE / name)


def test_oblique_files_in_reverse_order_are_sorted_rescaled_and_spaced_by_position(tmp_path: Path) -> None:
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    oblique = (c, s, 0.0, 0.0, 0.0, -1.0)  # a tilted coronal plane
    files = write_series(tmp_path, 3, "T2", T2, slices=7, gap=4.0, orientation=oblique, SliceThickness=5.5)
    stored = restyle(files, 5, 9, PixelSpacing=[0.8, 0.6], RescaleSlope=0.5, RescaleIntercept=-20)
    volume = load_dicom_volume(only_series(tmp_path))
    assert volume.image.GetSize() == (9, 5, 7)
    np.testing.assert_allclose(volume.image.GetSpacing(), (0.6, 0.8, 4.0), atol=1e-3)  # columns, rows, slices
    np.testing.assert_allclose(volume.image.GetOrigin(), [-3.6, -40.0, 20.0])
    assert volume.frames == tuple(SourceFrame(path, None) for path in files)  # slice order, not file-name order
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image), stored * 0.5 - 20)
    assert_same_volume(volume.image, sitk.Cast(series_reader([str(p) for p in files]), sitk.sitkFloat32), atol=1e-4)


def test_an_enhanced_multi_frame_object_is_sorted_by_frame_position(tmp_path: Path) -> None:
    path = tmp_path / "enhanced" / "mr.dcm"
    order = (3, 0, 5, 1, 4, 2)
    stored = write_shuffled_enhanced(path, order)
    volume = load_dicom_volume(only_series(tmp_path))
    frame_at = np.argsort(order)  # slice k holds frame frame_at[k] (0-based)
    assert volume.frames == tuple(SourceFrame(path, int(i) + 1) for i in frame_at)
    assert volume.image.GetSize() == (7, 6, 6)
    np.testing.assert_allclose(volume.image.GetSpacing(), (0.5, 0.5, 3.0))
    np.testing.assert_allclose(volume.image.GetOrigin(), (0.0, 0.0, 0.0))
    np.testing.assert_allclose(volume.image.GetDirection(), np.eye(3).ravel())
    expected = stored[frame_at] * ENHANCED_SLOPE + ENHANCED_INTERCEPT
    expected[order[0]] = stored[0] + 5.0  # frame 1 carries its own rescale
    np.testing.assert_array_equal(sitk.GetArrayFromImage(volume.image), expected)


def _drop_a_middle_slice(files: list[Path]) -> None:
    files[3].unlink()


def _repeat_positions(files: list[Path]) -> None:
    """The second half repeats the first half's positions, as a second echo would."""
    for path in files[4:]:
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [-3.6, -40.0, 20.0 + (int(ds.InstanceNumber) - 5) * 5.0]
        ds.save_as(path, enforce_file_format=True)


def _keep_one_slice(files: list[Path]) -> None:
    for path in files[1:]:
        path.unlink()


def _tilt_one_slice(files: list[Path]) -> None:
    ds = pydicom.dcmread(files[2])
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]
    ds.save_as(files[2], enforce_file_format=True)


def _shift_one_slice(files: list[Path]) -> None:
    ds = pydicom.dcmread(files[2])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0] + 1.0, *ds.ImagePositionPatient[1:]]
    ds.save_as(files[2], enforce_file_format=True)


def _truncate_pixels(files: list[Path]) -> None:
    files[5].write_bytes(files[5].read_bytes()[:-100])


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_drop_a_middle_slice, "slices are not evenly spaced (gaps from 5.00 to 10.00 mm)"),
        (_repeat_positions, "8 images at 4 slice positions (several echoes or time points)"),
        (_keep_one_slice, "a single slice, not a volume"),
        (_tilt_one_slice, "in orientation, pixel spacing or size"),
        (_shift_one_slice, "slices are shifted within their plane by up to 1.00 mm"),
        (_truncate_pixels, "cannot read the pixel data"),
    ],
    ids=["gap", "echoes", "one-slice", "tilted", "sheared", "truncated"],
)
def test_a_series_that_is_not_one_even_stack_is_refused_by_name(
    tmp_path: Path, damage: Callable[[list[Path]], None], words: str
) -> None:
    files = write_series(tmp_path, 3, "T2", T2, slices=8, gap=5.0)
    damage(files)
    with pytest.raises(UserError) as caught:
        load_dicom_volume(only_series(tmp_path))
    message = caught.value.message
    assert words in message and "\n" not in message and caught.value.field == "input"
    assert message.startswith(str(tmp_path))


def test_frames_without_their_own_positions_are_refused(tmp_path: Path) -> None:
    tags = {"ImagePositionPatient": [0.0, 0.0, 0.0], "ImageOrientationPatient": list(AXIAL), "PixelSpacing": [1, 1]}
    ds = dataset(SeriesInstanceUID=generate_uid(), SeriesNumber=5, SeriesDescription="cine", NumberOfFrames=3, **tags)
    path = write(ds, tmp_path / "cine.dcm", frames=3)
    with pytest.raises(UserError, match=f"^{re.escape(str(path))}: 3 frames without per-frame positions$"):
        load_dicom_volume(only_series(tmp_path))
