"""The recorded MNI152 -> SRI24 matrix is what a fresh registration finds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neurotriage.anatomy import registration
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE


@pytest.mark.slow
def test_re_derived_matrix_matches_the_record():
    matrix, quality = registration.estimate_mni_to_sri24()
    recorded = registration.recorded_mni_to_sri24()
    assert quality["correlation"] > 0.999
    assert np.linalg.det(matrix[:3, :3]) > 0
    # Where the two matrices send the grid's corners (mm): they must agree within half a voxel.
    corners = np.array([[*c, 1] for c in itertools.product(*[(0, n - 1) for n in GRID_SHAPE])]) @ BRATS_AFFINE.T
    to_mni = (np.linalg.inv(matrix) @ corners.T).T, (np.linalg.inv(recorded) @ corners.T).T
    assert np.abs(to_mni[0] - to_mni[1]).max() < 0.5
    dice = registration.lobe_dice(recorded, names=("frontal_lobe", "occipital"))
    assert min(dice.values()) > 0.98, dice
