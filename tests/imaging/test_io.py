"""Case discovery, loading, label conversion and orientation."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neurotriage.errors import UserError
from neurotriage.imaging.io import discover_cases, load_case, write_nifti
from neurotriage.imaging.naming import BRATS2020, BRATS2023, from_internal, naming_from_values, split_name
from neurotriage.imaging.sri24 import BRATS_AFFINE


@pytest.mark.parametrize("naming", [BRATS2020, BRATS2023])
@pytest.mark.parametrize("ext", [".nii", ".nii.gz"])
def test_loads_both_namings_and_extensions(make_case, naming, ext):
    case_id = "BraTS20_Training_001" if naming is BRATS2020 else "BraTS-GLI-00001-000"
    folder = make_case(case_id, naming, ext=ext)
    case = load_case(folder)
    assert case.case_id == case_id
    assert case.files.naming is naming
    assert set(case.images) == {"flair", "t1", "t1ce", "t2"}
    assert case.images["t1"].dtype == np.float32
    # Internal labels are contiguous whatever the file scheme.
    assert set(np.unique(case.seg)) == {0, 1, 2, 3}


def test_file_labels_follow_the_naming(make_case):
    seg20 = np.asarray(nib.load(str(make_case("A", BRATS2020) / "A_seg.nii.gz")).dataobj)
    seg23 = np.asarray(nib.load(str(make_case("B-1", BRATS2023) / "B-1-seg.nii.gz")).dataobj)
    assert set(np.unique(seg20)) == {0, 1, 2, 4}
    assert set(np.unique(seg23)) == {0, 1, 2, 3}
    assert naming_from_values(seg20) is BRATS2020
    assert naming_from_values(seg23) is BRATS2023


def test_round_trip_labels():
    labels = np.array([0, 1, 2, 3], np.uint8)
    assert from_internal(labels, BRATS2020).tolist() == [0, 1, 2, 4]
    assert from_internal(labels, BRATS2023).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BraTS20_Training_001_t1ce.nii.gz", ("brats2020", "BraTS20_Training_001", "t1ce")),
        ("BraTS20_Training_001_t1.nii", ("brats2020", "BraTS20_Training_001", "t1")),
        ("BraTS-GLI-00001-000-t2f.nii.gz", ("brats2023", "BraTS-GLI-00001-000", "flair")),
        ("BraTS-GLI-00001-000-seg.nii.gz", ("brats2023", "BraTS-GLI-00001-000", "seg")),
        ("notes.txt", None),
    ],
)
def test_split_name(name, expected):
    parsed = split_name(name)
    assert (None if parsed is None else (parsed[0].name, parsed[1], parsed[2])) == expected


def test_orientation_comes_from_the_header(make_case):
    case = load_case(make_case())
    assert case.axcodes == ("L", "P", "S")
    # Voxel (0, 0, 0) of a BraTS header sits at world y = 239 mm: the affine, not array order.
    assert (case.affine @ [0, 0, 0, 1])[:3].tolist() == [0.0, 239.0, 0.0]


def _tilted(radians: float) -> np.ndarray:
    c, s = np.cos(radians), np.sin(radians)
    return BRATS_AFFINE @ np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])


@pytest.mark.parametrize(
    "affine",
    [
        np.diag([1.0, 1.0, 1.0, 1.0]),  # RAS
        BRATS_AFFINE[:, [2, 0, 1, 3]],  # axes permuted
        np.diag([-0.9, 1.2, 3.0, 1.0]),  # anisotropic, flipped
        _tilted(5e-4),  # a tilt within float noise
    ],
    ids=["ras", "permuted", "anisotropic", "float-noise-tilt"],
)
def test_any_axis_aligned_header_loads(make_case, affine):
    case = load_case(make_case(affine=affine))
    assert np.allclose(case.affine, affine)


def test_discover_folder_of_cases(make_case, tmp_path):
    root = tmp_path / "cohort"
    make_case("X_1", root=root)
    make_case("X_2", root=root)
    assert [c.case_id for c in discover_cases(root)] == ["X_1", "X_2"]


def test_write_nifti_is_deterministic_and_atomic(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    a = write_nifti(data, BRATS_AFFINE, tmp_path / "a.nii.gz").read_bytes()
    b = write_nifti(data, BRATS_AFFINE, tmp_path / "b.nii.gz").read_bytes()
    assert a == b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "b.nii.gz"]


def test_missing_case_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a folder"):
        load_case(tmp_path / "nope")
