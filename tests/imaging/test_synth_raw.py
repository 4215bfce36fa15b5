"""Synthetic raw studies: layout, headers, and that every series shows the truth's anatomy where the pose says."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from neurotriage.cli import main
from neurotriage.imaging.io import load_case
from neurotriage.imaging.naming import SEQUENCES
from neurotriage.imaging.synth_series import AXIAL_CODES, SAGITTAL_CODES, SeriesPlan

# Cohort seed 1, case 0: an enhancing right temporal tumour, 5.5 mm axial series in three orientation
# codes (LPS and RPS among them: a left-right flip between two series) and a 1 mm sagittal T1ce.
SEED = 1
CASE = "SYN_0000"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """One raw study written by the CLI, and its truth."""
    out = tmp_path_factory.mktemp("raw")
    assert main(["synth", str(out), "--n", "1", "--seed", str(SEED), "--raw"]) == 0
    return out, json.loads((out / "truth" / CASE / "truth.json").read_text())


def _series(study, sequence: str) -> list[tuple[nib.Nifti1Image, dict]]:
    out, truth = study
    return [(nib.load(out / CASE / f), s) for f, s in truth["series"].items() if s["sequence"] == sequence]


def _truth_image(study, key: str) -> nib.Nifti1Image:
    out, _ = study
    return nib.load(out / "truth" / CASE / f"{CASE}_{key}.nii.gz")


def _world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    return voxels @ affine[:3, :3].T + affine[:3, 3]


def _raw_values(img: nib.Nifti1Image, pose: np.ndarray, brats_points: np.ndarray) -> np.ndarray:
    """Raw intensities at BraTS world points, through the truth pose and the raw header only."""
    scanner = _world(pose, brats_points)
    voxels = _world(np.linalg.inv(img.affine), scanner)
    return ndi.map_coordinates(np.asarray(img.dataobj, np.float32), voxels.T, order=1)


def test_layout_and_truth_folder(study) -> None:
    out, truth = study
    files = sorted(p.name for p in (out / CASE).glob("*.nii.gz"))
    assert files == sorted(truth["series"])
    sequences = sorted(s["sequence"] for s in truth["series"].values())
    assert sequences == sorted([*SEQUENCES, "localiser"])
    for name, s in truth["series"].items():
        assert name == f"{s['series_description']}_{s['series_number']}.nii.gz"
    (localiser,) = _series(study, "localiser")
    assert localiser[0].shape[2] <= 5 and localiser[1]["slice_thickness_mm"] >= 5
    case = load_case(out / "truth" / CASE)
    assert case.shape == (240, 240, 155) and case.seg is not None
    mask = nib.load(out / "truth" / CASE / truth["brain_mask"])
    assert np.array_equal(np.asarray(mask.dataobj) > 0, case.images["t1"] > 0)
    assert (out / "truth" / CASE / "truth.json").exists() and not (out / CASE / "truth.json").exists()


def test_sidecars_say_what_a_converter_writes(study) -> None:
    out, truth = study
    assert truth["sidecars"], "seed 1 should give a study with sidecars"
    by_number = sorted(truth["series"].items(), key=lambda item: item[1]["series_number"])
    times = []
    for name, s in by_number:
        sidecar = json.loads((out / CASE / name.replace(".nii.gz", ".json")).read_text())
        assert sidecar["SeriesDescription"] == s["series_description"]
        assert sidecar["SeriesNumber"] == s["series_number"]
        assert ("InversionTime" in sidecar) == (s["sequence"] == "flair" or sidecar.get("MRAcquisitionType") == "3D")
        assert ("ContrastBolusAgent" in sidecar) == (s["sequence"] == "t1ce")
        times.append(sidecar["AcquisitionTime"])
    assert times == sorted(times)
    assert by_number[-1][1]["sequence"] == "t1ce"  # contrast is given last


def test_headers_carry_orientation_and_grid(study) -> None:
    out, truth = study
    codes = set()
    for name, s in truth["series"].items():
        img = nib.load(out / CASE / name)
        qform, qcode = img.header.get_qform(coded=True)
        sform, scode = img.header.get_sform(coded=True)
        assert qcode == 1 and scode == 1
        np.testing.assert_allclose(qform, sform, atol=1e-4)
        assert "".join(nib.aff2axcodes(img.affine)) == s["orientation"]
        np.testing.assert_allclose(img.header.get_zooms()[:3], s["voxel_size_mm"], atol=1e-4)
        assert list(img.shape) == s["shape"]
        if s["sequence"] != "localiser":
            codes.add(s["orientation"])
    assert len(codes) >= 3


def test_pose_is_rigid_and_bounded(study) -> None:
    _, truth = study
    pose = truth["pose"]
    matrix = np.array(pose["brats_to_scanner"])
    np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-5)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0, abs=1e-5)
    assert all(abs(a) <= 15 for a in pose["rotation_deg"]) and all(abs(t) <= 20 for t in pose["translation_mm"])
    for mark in truth["landmarks"].values():
        np.testing.assert_allclose(_world(matrix, np.array(mark["brats_mm"])), mark["scanner_mm"], atol=0.01)
    assert len(truth["landmarks"]) >= 6


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_series_show_the_truth_anatomy_where_the_pose_says(study, sequence: str) -> None:
    """Raw values at posed brain points match the truth image; mirrored left-right they do not."""
    _, truth = study
    pose = np.array(truth["pose"]["brats_to_scanner"])
    reference = _truth_image(study, sequence)
    brain = np.asarray(reference.dataobj, np.float32)
    voxels = np.argwhere(brain > 0)[::97]
    points = _world(reference.affine, voxels)
    expected = brain[tuple(voxels.T)]
    mirrored = points.copy()
    mirrored[:, 0] = 2 * truth["landmarks"]["brain_centroid"]["brats_mm"][0] - mirrored[:, 0]
    for img, _ in _series(study, sequence):
        same = np.corrcoef(_raw_values(img, pose, points), expected)[0, 1]
        flipped = np.corrcoef(_raw_values(img, pose, mirrored), expected)[0, 1]
        assert same > 0.85 and flipped < same - 0.25, (same, flipped)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_the_tumour_lands_on_its_truth_within_a_few_mm(study, sequence: str) -> None:
    """Around the tumour, the truth pose beats the same pose shifted 4 mm along any world axis."""
    _, truth = study
    pose = np.array(truth["pose"]["brats_to_scanner"])
    seg = np.asarray(_truth_image(study, "seg").dataobj) > 0
    reference = _truth_image(study, sequence)
    image = np.asarray(reference.dataobj, np.float32)
    # Inside the brain only: outside it the truth is zero and the raw series shows CSF, skull and scalp.
    near = ndi.binary_dilation(seg, iterations=8) & ndi.binary_erosion(image > 0, iterations=3)
    voxels = np.argwhere(near)[::7]
    points = _world(reference.affine, voxels)
    expected = image[tuple(voxels.T)]
    offsets = [np.zeros(3)] + [sign * 4.0 * np.eye(3)[axis] for axis in range(3) for sign in (-1, 1)]
    for img, _ in _series(study, sequence):
        scores = [np.corrcoef(_raw_values(img, pose, points + o), expected)[0, 1] for o in offsets]
        assert int(np.argmax(scores)) == 0, scores


def _bright_region_centroid(img: nib.Nifti1Image) -> np.ndarray:
    """World centroid of the largest FLAIR-bright region well inside the head (scalp fat left out)."""
    data = np.asarray(img.dataobj, np.float32)
    head = ndi.binary_fill_holes(data > 0.2 * np.percentile(data, 99))
    inner = ndi.distance_transform_edt(head, sampling=img.header.get_zooms()[:3]) > 14
    bright = ndi.binary_opening(inner & (data > 1.5 * np.median(data[inner])), structure=np.ones((5, 5, 1)))
    labels, n = ndi.label(bright)
    largest = labels == 1 + int(np.argmax(ndi.sum(bright, labels, range(1, n + 1))))
    return _world(img.affine, np.argwhere(largest).mean(axis=0))


def test_the_tumour_found_in_the_raw_flair_is_where_truth_says_and_on_its_side(study) -> None:
    _, truth = study
    marks = truth["landmarks"]
    pose = np.array(truth["pose"]["brats_to_scanner"])
    (flair, _), *_ = _series(study, "flair")
    found = _bright_region_centroid(flair)
    assert np.linalg.norm(found - marks["tumour_centroid"]["scanner_mm"]) < 10
    # The patient's right (+x in BraTS RAS world) as the scanner sees it after the pose.
    patient_right = pose[:3, :3] @ np.array([1.0, 0.0, 0.0])
    side = np.dot(found - np.array(marks["brain_centroid"]["scanner_mm"]), patient_right)
    assert ("right" if side > 0 else "left") == truth["hemisphere"]


def test_left_extreme_stays_left_in_scanner_world(study) -> None:
    _, truth = study
    marks = truth["landmarks"]
    pose = np.array(truth["pose"]["brats_to_scanner"])
    left, right = (np.array(marks[k]["scanner_mm"]) for k in ("left_extreme", "right_extreme"))
    # Rotations stay within 15 degrees, so the patient's left is still towards the scanner's -x (RAS).
    assert left[0] < right[0] - 100
    assert np.dot(right - left, pose[:3, 0]) > 100


@pytest.mark.parametrize("codes", [*AXIAL_CODES, *SAGITTAL_CODES])
def test_plan_affine_follows_its_codes_and_centre(codes: str) -> None:
    plan = SeriesPlan("t2", "AX_T2", 5, codes, (0.9, 0.9, 5.5), (256, 256, 30), {})
    centre = np.array([10.0, -20.0, 30.0])
    affine = plan.affine(centre)
    assert "".join(nib.aff2axcodes(affine)) == codes
    np.testing.assert_allclose(_world(affine, (np.array(plan.shape) - 1) / 2), centre)
    np.testing.assert_allclose(np.linalg.norm(affine[:3, :3], axis=0), plan.spacing)


def test_preview_is_refused_with_raw(tmp_path: Path, capsys) -> None:
    assert main(["synth", str(tmp_path / "out"), "--n", "1", "--raw", "--preview"]) == 2
    assert "--preview" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
