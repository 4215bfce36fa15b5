"""The plausibility gate: images no scanner makes are refused, naming the file, before the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurotriage.errors import UserError
from neurotriage.imaging.io import load_case
from neurotriage.imaging.naming import BRATS2020, SEQUENCES
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.segmentation.plausibility import check_finite, check_plausible


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic case with a tumour."""
    return write_case(generate_case(21, "SYN_PL", kind="enhancing"), tmp_path_factory.mktemp("pl"), BRATS2020)


def _edited(case_dir: Path, edit) -> object:
    case = load_case(case_dir, with_seg=False)
    edit(case.images)
    return case


def _brain_voxel(images: dict[str, np.ndarray]) -> tuple[int, int, int]:
    return tuple(int(i) for i in np.argwhere(images["flair"] != 0)[len(np.argwhere(images["flair"] != 0)) // 2])


def test_a_normal_case_passes(case_dir):
    check_plausible(load_case(case_dir, with_seg=False))


def _huge_voxel_everywhere(images):
    where = _brain_voxel(images)
    for key in SEQUENCES:
        images[key][where] = 3e38


def _scaled(images):
    for key in SEQUENCES:
        images[key] *= 1e33


def _one_bright_flair_voxel(images):
    images["flair"][_brain_voxel(images)] = 1e7


def _one_outlier_flair_voxel(images):
    images["flair"][_brain_voxel(images)] = 5e5  # a magnitude, but 190x the brain's 99.9th percentile


def _all_negative(images):
    for key in SEQUENCES:
        images[key] *= -1


@pytest.mark.parametrize(
    ("edit", "file_part", "message"),
    [
        (_huge_voxel_everywhere, "_flair", "are not MR magnitudes"),
        (_scaled, "_flair", "are not MR magnitudes"),
        (_one_bright_flair_voxel, "_flair", "are not MR magnitudes"),
        (_one_outlier_flair_voxel, "_flair", "the 99.9th percentile"),
        (_all_negative, "_flair", "of the brain is negative"),
    ],
)
def test_implausible_images_are_refused_naming_the_file(case_dir, edit, file_part, message):
    with pytest.raises(UserError, match=message) as caught:
        check_plausible(_edited(case_dir, edit))
    line = str(caught.value)
    assert "\n" not in line and file_part in line.split(":")[0]


def test_a_grid_that_is_not_brain_like_is_refused(case_dir):
    def fill(images):
        for key in SEQUENCES:
            images[key][images[key] == 0] = 100.0

    with pytest.raises(UserError, match="of the grid is non-zero"):
        check_plausible(_edited(case_dir, fill))


def test_non_finite_network_arrays_are_refused(case_dir):
    case = load_case(case_dir, with_seg=False)
    check_finite(np.zeros(3, np.float32), case, "network input")
    with pytest.raises(UserError, match="network output is not finite"):
        check_finite(np.array([0.0, np.inf], np.float32), case, "network output")
