"""bench.shared_case_stability lists the outline's pieces and the side of the midline each lies on."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from bench.shared_case_stability import pieces

from neurotriage.imaging import sri24
from neurotriage.imaging.io import Case, CaseFiles
from neurotriage.imaging.labels import EDEMA
from neurotriage.imaging.naming import BRATS2020


def test_a_piece_across_the_midline_from_the_main_tumour_is_marked_other():
    labels = np.zeros(sri24.GRID_SHAPE, np.uint8)
    labels[150:170, 100:120, 60:73] = EDEMA  # 5.2 ml; BraTS voxel x 150-170 is the patient's left
    labels[60:70, 100:110, 60:70] = EDEMA  # 1 ml, the patient's right
    labels[135:141, 100:110, 80:85] = EDEMA  # 0.3 ml, left again
    files = CaseFiles("X", Path("."), BRATS2020, {})
    case = Case(files, sri24.BRATS_AFFINE.copy(), nib.Nifti1Header(), {"flair": labels.astype(np.float32)})
    assert pieces(labels, case) == [
        {"ml": 5.2, "side": "same"},
        {"ml": 1.0, "side": "other"},
        {"ml": 0.3, "side": "same"},
    ]
    assert pieces(np.zeros_like(labels), case) == []
