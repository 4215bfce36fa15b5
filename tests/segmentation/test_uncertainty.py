"""The uncertainty map: entropy over the four labels of known probabilities, its uint8 file, and the uncertain
tissue counted at each compartment of a constructed case."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.imaging.labels import EDEMA, NECROTIC_CORE
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.segmentation.probabilities import CLASSES, REGIONS, Probabilities
from neurotriage.segmentation.uncertainty import (
    NEAR_MM,
    UNCERTAIN_AT,
    entropy,
    uncertain_tissue,
    uncertainty_map,
    uncertainty_path,
    write_uncertainty,
)


def _classes(*voxels: tuple[float, float, float, float]) -> Probabilities:
    return Probabilities(CLASSES, np.array(voxels, np.float32).T.reshape(4, len(voxels), 1, 1))


def _regions(*voxels: tuple[float, float, float]) -> Probabilities:
    return Probabilities(REGIONS, np.array(voxels, np.float32).T.reshape(3, len(voxels), 1, 1), 0.5)


def test_entropy_is_0_for_one_label_certain_and_1_for_all_four_equally_likely():
    values = entropy(_classes((1, 0, 0, 0), (0, 0, 0, 1), (0.25, 0.25, 0.25, 0.25), (0.5, 0.5, 0, 0))).ravel()
    np.testing.assert_allclose(values, [0, 0, 1, 0.5], atol=1e-6)  # an even split of two labels: one bit of two
    p = np.array([0.7, 0.1, 0.1, 0.1])
    assert entropy(_classes(tuple(p))).item() == pytest.approx(-(p * np.log(p)).sum() / math.log(4), abs=1e-6)


def test_regions_are_measured_as_the_class_distribution_their_nesting_implies():
    # Certain regions: certain labels. WT alone at 0.5: background or oedema, an even split.
    values = entropy(_regions((0, 0, 0), (1, 1, 1), (1, 0, 0), (0.5, 0, 0), (0.75, 0.5, 0.25))).ravel()
    np.testing.assert_allclose(values, [0, 0, 0, 0.5, 1], atol=1e-6)  # the last: 0.25 for each label
    # The marginals of a class distribution give that distribution back, so its entropy too.
    classes = _classes((0.1, 0.2, 0.3, 0.4))
    as_regions = Probabilities(REGIONS, classes.regions(), 0.5)
    np.testing.assert_allclose(np.stack(list(as_regions.classes())), classes.values, atol=1e-6)
    assert entropy(as_regions).item() == pytest.approx(entropy(classes).item(), abs=1e-6)


def test_the_map_is_uint8_steps_of_the_entropy_and_its_file_reads_back_as_0_to_1(tmp_path):
    stored = uncertainty_map(_classes((1, 0, 0, 0), (0.5, 0.5, 0, 0), (0.25, 0.25, 0.25, 0.25))).ravel()
    assert stored.dtype == np.uint8 and stored.tolist() == [0, 128, 255]
    path = write_uncertainty(stored.reshape(3, 1, 1), BRATS_AFFINE, tmp_path / "C_uncertainty.nii.gz")
    image = nib.load(path)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.get_fdata().ravel(), [0, 128 / 255, 1], atol=1e-6)


@pytest.mark.parametrize(
    ("segmentation", "uncertainty"),
    [
        ("out/SYN_0000_seg.nii.gz", "out/SYN_0000_uncertainty.nii.gz"),
        ("out/BraTS-GLI-00001-000-seg.nii.gz", "out/BraTS-GLI-00001-000-uncertainty.nii.gz"),
        ("out/mine.nii.gz", "out/mine_uncertainty.nii.gz"),
        ("out/mine.nii", "out/mine_uncertainty.nii"),
    ],
)
def test_the_map_lies_beside_its_segmentation_in_its_naming(segmentation, uncertainty):
    assert uncertainty_path(Path(segmentation)) == Path(uncertainty)


def test_uncertain_tissue_is_counted_inside_or_near_each_compartment():
    shape = (40, 40, 40)
    labels = np.zeros(shape, np.uint8)
    labels[10:20, 10:20, 10:20] = EDEMA  # 1000 voxels of whole tumour
    labels[13:17, 13:17, 13:17] = NECROTIC_CORE  # 64 of them core
    uncertainty = np.zeros(shape, np.uint8)
    uncertain = math.ceil(UNCERTAIN_AT * 255)
    uncertainty[14, 14, 14] = uncertain  # inside the core
    uncertainty[20:23, 15, 15] = uncertain  # 1-3 mm outside the tumour, 4-6 mm from the core
    uncertainty[30, 15, 15] = 255  # 11 mm outside: only in the total
    uncertainty[15, 15, 10] = uncertain - 1  # just below the threshold: nowhere
    spacing = (1.0, 1.0, 1.0)
    tissue = uncertain_tissue(uncertainty, labels, spacing)
    assert (tissue.threshold, tissue.near_mm) == (UNCERTAIN_AT, NEAR_MM) == (0.5, 5.0)
    # 0.001 ml a voxel; the core's 5 mm reach takes the voxels at 4 and 5 mm from it, not the one at 6;
    # there is no enhancing tumour, so no uncertain tissue near it.
    expected = {"whole_tumour": 0.004, "tumour_core": 0.003, "enhancing": 0.0, "necrosis": 0.003, "edema": 0.004}
    assert tissue.ml == expected
    assert tissue.total_ml == 0.005
    # With 2 mm voxels along the first axis the same voxels lie twice as far out and weigh twice as much.
    far = uncertain_tissue(uncertainty, labels, (2.0, 1.0, 1.0))
    assert far.ml["whole_tumour"] == 0.006 and far.ml["tumour_core"] == 0.002  # 2 and 4 mm out; core: inside
