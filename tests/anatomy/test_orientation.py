"""The same label map under equivalent headers (RAS, LPS, permuted axes) gives the same answer."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.sri24 import BRATS_AFFINE

from .conftest import locate_doc as locate
from .conftest import locate_file_doc as locate_file

AXCODES = [("R", "A", "S"), ("L", "A", "S"), ("R", "P", "I"), ("P", "L", "S"), ("S", "R", "A")]


def reoriented(data: np.ndarray, codes: tuple[str, str, str]) -> tuple[np.ndarray, np.ndarray]:
    """The BraTS-header array and affine rewritten with axis codes `codes` (same world content)."""
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(BRATS_AFFINE), nib.orientations.axcodes2ornt(codes)
    )
    affine = BRATS_AFFINE @ nib.orientations.inv_ornt_aff(ornt, data.shape)
    return nib.orientations.apply_orientation(data, ornt), affine


@pytest.fixture(scope="module")
def lopsided(left_temporal, deepest, make_ball) -> np.ndarray:
    """Left temporal tumour with a right parietal satellite: asymmetric on every axis."""
    return make_ball(deepest("parietal_lobe", "right"), 4, seg=left_temporal.copy())


@pytest.fixture(scope="module")
def reference(lopsided) -> dict:
    return locate(lopsided, BRATS_AFFINE)


@pytest.mark.parametrize("codes", AXCODES, ids="".join)
def test_equivalent_headers_give_identical_results(lopsided, reference, codes):
    data, affine = reoriented(lopsided, codes)
    assert nib.aff2axcodes(affine) == codes
    assert not np.array_equal(affine, BRATS_AFFINE)
    assert locate(data, affine) == reference
    assert reference["hemisphere"] == "left" and reference["n_components"] == 2


def test_files_saved_as_ras_and_lps_agree(tmp_path, lopsided, reference):
    lps = write_nifti(lopsided, BRATS_AFFINE, tmp_path / "lps.nii.gz")
    ras_img = nib.as_closest_canonical(nib.load(str(lps)))
    ras = tmp_path / "ras.nii.gz"
    nib.save(ras_img, str(ras))
    assert nib.aff2axcodes(nib.load(str(ras)).affine) == ("R", "A", "S")
    from_lps, from_ras = locate_file(lps), locate_file(ras)
    assert from_lps.pop("source") != from_ras.pop("source")
    assert from_lps == from_ras == {k: v for k, v in reference.items() if k != "source"}


def test_the_header_decides_the_side(lopsided):
    _, x_flipped = reoriented(lopsided, ("R", "P", "S"))  # the header of the x-flipped array
    # The unflipped voxels under that header are the mirrored patient: the tumour is now right.
    assert locate(lopsided, x_flipped)["hemisphere"] == "right"
