"""VASARI features from masks: proportion scale, side, deep white matter, midline, satellites."""

from __future__ import annotations

import numpy as np
import pytest

from neurotriage.anatomy import atlas as anatomy_atlas
from neurotriage.anatomy.vasari import proportion_code
from neurotriage.imaging.sri24 import BRATS_AFFINE

from .conftest import locate_doc as locate

MID_I = int(round(-float(anatomy_atlas.region_atlas()["midline_x"])))


@pytest.mark.parametrize(
    ("percent", "code"),
    [(0, 2), (0.1, 3), (5, 3), (5.1, 4), (33, 4), (34, 5), (67, 5), (68, 6), (95, 6), (99.9, 7), (100, 8)],
)
def test_proportion_scale(percent, code):
    assert proportion_code(percent) == code


def test_right_frontal_ball(right_frontal):
    vasari = locate(right_frontal, BRATS_AFFINE)["vasari"]
    assert vasari["F1"]["value"] == "frontal_lobe" and vasari["F1"]["code"] == 1
    assert vasari["F2"]["code"] == 1  # right
    wt = np.count_nonzero(right_frontal)
    assert vasari["F5"]["percent"] == pytest.approx(100 * np.count_nonzero(right_frontal == 3) / wt, abs=0.05)
    assert vasari["F14"]["percent"] == pytest.approx(100 * np.count_nonzero(right_frontal == 2) / wt, abs=0.05)
    assert vasari["F6"] == vasari["F7"] | {"name": vasari["F6"]["name"]}  # both read BraTS label 1
    assert (vasari["F21"]["code"], vasari["F22"]["code"], vasari["F23"]["code"]) == (1, 2, 2)
    assert vasari["F24"] == {"name": "satellites", "code": 1, "count": 0}


def test_left_side_code(left_temporal):
    assert locate(left_temporal, BRATS_AFFINE)["vasari"]["F2"]["code"] == 3


def test_enhancing_tumour_crossing_the_midline_and_satellites(make_ball, deepest):
    seg = np.zeros(anatomy_atlas.region_atlas()["regions"].shape, np.uint8)
    seg[MID_I - 12 : MID_I + 13, 140:150, 95:105] = 3  # enhancing bar across the midline, 10 ml
    make_ball(deepest("occipital_lobe", "right"), 7, seg=seg)  # its enhancing rim is a 0.8 ml satellite
    result = locate(seg, BRATS_AFFINE)
    vasari = result["vasari"]
    assert result["crosses_midline"] is True and result["hemisphere"] == "bilateral"
    assert vasari["F2"]["code"] == 2
    assert vasari["F23"]["code"] == 3 and vasari["F22"]["code"] == 2
    assert vasari["F24"]["count"] == 1 and vasari["F24"]["code"] == 2


def test_deep_white_matter_and_ependymal(deepest, make_ball):
    vasari = locate(make_ball(deepest("internal_capsule", "left"), 6), BRATS_AFFINE)["vasari"]
    assert vasari["F21"]["code"] == 2 and "internal_capsule" in vasari["F21"]["structures"]
    ventricle = np.argwhere(anatomy_atlas.region_atlas()["regions"] == anatomy_atlas.VENTRICLES)[0]
    vasari = locate(make_ball(tuple(int(v) for v in ventricle), 3), BRATS_AFFINE)["vasari"]
    assert vasari["F19"]["code"] == 2


def test_cortical_involvement(anatomy, deepest, make_ball):
    deep = locate(make_ball(deepest("thalamus", "right"), 4), BRATS_AFFINE)
    assert deep["vasari"]["F20"]["code"] == 1 and deep["cortical_involvement"] is False
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(anatomy["cortex"][:, :, 100])  # an axial slice high in the brain
    centre = (*np.unravel_index(int(depth.argmax()), depth.shape), 100)
    surface = locate(make_ball(centre, 15), BRATS_AFFINE)
    assert surface["vasari"]["F20"]["code"] == 2 and surface["cortical_involvement"] is True


def test_enhancement_traced_in_patches_is_one_focus(deepest):
    i, j, k = deepest("frontal_lobe", "right")
    for gap, satellites in ((3, 0), (8, 1)):
        seg = np.zeros(anatomy_atlas.region_atlas()["regions"].shape, np.uint8)
        seg[i - 12 : i + 13, j - 12 : j + 13, k - 12 : k + 13] = 2  # oedema holding both patches
        seg[i - 6 : i, j - 3 : j + 3, k - 3 : k + 3] = 3  # a 0.216 ml patch of ring...
        seg[i + gap : i + gap + 6, j - 3 : j + 3, k - 3 : k + 3] = 3  # ...and another, `gap` voxels on
        assert locate(seg, BRATS_AFFINE)["vasari"]["F24"]["count"] == satellites, gap
