"""Rigid co-registration to the T1ce reference, scored at the landmarks of a synthetic raw study.

Every series of a synthetic study shares one pose, so the right transform is the identity; a copy of a
series whose header is moved by a known rigid change must be found moved by exactly that change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk

from neurotriage.cli import main
from neurotriage.ingest.coregister import coregister, reference_grid

RAS_TO_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass
class Study:
    series: dict[str, sitk.Image]  # by sequence
    landmarks: np.ndarray  # (n, 3) scanner-world LPS mm
    reference: sitk.Image


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    # Seed 1's first study: 5.5 mm axial T1, T2 and FLAIR (33 slices) against a 1 mm T1ce.
    out = tmp_path_factory.mktemp("raw")
    assert main(["synth", str(out), "--n", "1", "--seed", "1", "--raw"]) == 0
    truth_file = next((out / "truth").glob("*/truth.json"))
    truth = json.loads(truth_file.read_text())
    folder = out / truth_file.parent.name
    series = {
        s["sequence"]: sitk.ReadImage(str(folder / name))
        for name, s in truth["series"].items()
        if s["sequence"] != "localiser"
    }
    marks = np.array([m["scanner_mm"] for m in truth["landmarks"].values()]) * RAS_TO_LPS
    return Study(series, marks, reference_grid(series["t1ce"]))


def test_the_reference_grid_is_1mm_over_the_t1ce_extent() -> None:
    image = sitk.Image([40, 30, 10], sitk.sitkInt16)
    image.SetSpacing([0.5, 2.0, 5.5])
    image.SetDirection([0, 0, 1, 1, 0, 0, 0, -1, 0])
    image.SetOrigin([10.0, -20.0, 30.0])
    grid = reference_grid(image)
    assert grid.GetSize() == (20, 60, 55)
    assert grid.GetSpacing() == (1.0, 1.0, 1.0)
    assert grid.GetDirection() == image.GetDirection()
    assert np.allclose(_corner(grid), _corner(image))


def _corner(image: sitk.Image) -> np.ndarray:
    """The outer corner of the first voxel, in physical space."""
    half = np.array(image.GetSpacing()) / 2
    return np.array(image.GetOrigin()) - np.array(image.GetDirection()).reshape(3, 3) @ half


@pytest.mark.slow
def test_every_series_lands_on_the_reference_within_2mm(study: Study) -> None:
    # The T1ce is the reference's own source: ingest has nothing to register there (14 s to confirm it).
    for sequence in ("t1", "t2", "flair"):
        errors = _landmark_errors(coregister(study.series[sequence], study.reference), study.landmarks, lambda p: p)
        assert np.median(errors) < 2.0 and errors.max() < 4.0, (sequence, errors.round(2))


@pytest.mark.slow
def test_a_known_rigid_move_of_a_series_header_is_recovered(study: Study) -> None:
    rotation = sitk.Euler3DTransform()
    rotation.SetRotation(*np.radians([3.0, -2.0, 3.5]))  # 5.0 degrees in all
    rotation.SetTranslation([5.0, -4.0, 4.8])  # 8.0 mm
    centre = study.landmarks.mean(axis=0)
    rotation.SetCenter(centre.tolist())
    moved = _moved_header(study.series["flair"], rotation)
    found = coregister(moved, study.reference)
    errors = _landmark_errors(found, study.landmarks, lambda p: np.array(rotation.TransformPoint(p.tolist())))
    assert errors.max() < 1.0, errors.round(2)
    assert _angle_deg(_matrix(found).T @ _matrix(rotation)) < 1.0


def _moved_header(image: sitk.Image, move: sitk.Euler3DTransform) -> sitk.Image:
    """The same voxels with a header that puts what was at physical x at move(x)."""
    moved = sitk.Image(image)
    rotation = _matrix(move)
    moved.SetDirection((rotation @ np.array(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    moved.SetOrigin(move.TransformPoint(image.GetOrigin()))
    return moved


def _landmark_errors(found: sitk.Transform, points: np.ndarray, expected: Callable) -> np.ndarray:
    return np.array([np.linalg.norm(np.array(found.TransformPoint(p.tolist())) - expected(p)) for p in points])


def _matrix(transform: sitk.Euler3DTransform) -> np.ndarray:
    return np.array(transform.GetMatrix()).reshape(3, 3)


def _angle_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1.0, 1.0))))
