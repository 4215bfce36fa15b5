"""locate(): regions, side, midline rule, volumes, eloquent areas, grid checks and label schemes."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neurotriage.anatomy import atlas as anatomy_atlas
from neurotriage.anatomy.neighbourhood import Rules
from neurotriage.errors import UserError
from neurotriage.imaging.naming import BRATS2020, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE

from .conftest import locate_doc as locate

# Index along the first BraTS axis of the voxel plane holding the atlas midline (x = -i).
MID_I = int(round(-float(anatomy_atlas.region_atlas()["midline_x"])))


def _block(i0: int, i1: int, j=(100, 110), k=(90, 100), label: int = 2, seg=None) -> np.ndarray:
    """A box of `label` over BraTS indices i0 <= i < i1 (left is larger i), j and k ranges."""
    seg = np.zeros(GRID_SHAPE, np.uint8) if seg is None else seg
    seg[i0:i1, j[0] : j[1], k[0] : k[1]] = label
    return seg


def test_ball_in_right_frontal_lobe(right_frontal):
    result = locate(right_frontal, BRATS_AFFINE)
    assert result["tumour_found"] is True
    assert (result["hemisphere"], result["primary_region"], result["primary_region_side"]) == (
        "right",
        "frontal_lobe",
        "right",
    )
    assert result["crosses_midline"] is False
    assert result["summary"].startswith("Right frontal lobe, ")
    assert "does not cross the midline" in result["summary"]
    mls = [r["ml"] for r in result["regions"]]
    assert mls == sorted(mls, reverse=True)
    assert result["regions"][0] == result["regions"][0] | {"name": "frontal_lobe", "side": "right", "kind": "lobe"}
    ml = np.bincount(right_frontal.ravel(), minlength=4) / 1000  # 1 mm voxels
    expected = {"whole_tumour": ml[1:].sum(), "tumour_core": ml[1] + ml[3], "enhancing": ml[3], "necrosis": ml[1]}
    assert result["volumes_ml"] == pytest.approx(
        expected | {"edema": ml[2]}, abs=0.006
    )  # each volume is rounded to 0.01 ml
    assert result["centroid_mm"][0] > result["midline"]["x_mm"]  # world x: right of the midline
    assert result["centroid_mni_mm"][0] > 0  # MNI x > 0 is the right hemisphere
    assert result["n_components"] == 1


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize(
    "region",
    ["frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula", "cerebellum", "thalamus"],
)
def test_a_ball_is_found_in_its_region_and_side(region, side, deepest, make_ball):
    result = locate(make_ball(deepest(region, side), 4), BRATS_AFFINE)
    assert (result["primary_region"], result["primary_region_side"], result["hemisphere"]) == (region, side, side)
    assert result["primary_region_shared_with"] == [] and " junction " not in result["summary"]


def test_a_lesion_across_two_lobes_names_both(make_ball):
    ball = make_ball((156, 104, 86), 6)  # on the left insula's border with the frontal lobe
    assert locate(ball, BRATS_AFFINE)["primary_region_shared_with"] == []  # its core is mostly insula
    result = locate(ball, BRATS_AFFINE, Rules(shared_region_fraction=0.3))
    assert (result["primary_region"], result["primary_region_shared_with"]) == ("insula", ["frontal_lobe"])
    assert result["summary"].startswith("Left insula at its junction with the frontal lobe, ")


def test_side_follows_the_tumour_not_the_array(left_temporal):
    mirrored = np.zeros_like(left_temporal)
    mirrored[: 2 * MID_I + 1] = left_temporal[2 * MID_I :: -1]  # mirror about the midline plane
    left, right = locate(left_temporal, BRATS_AFFINE), locate(mirrored, BRATS_AFFINE)
    assert (left["hemisphere"], right["hemisphere"]) == ("left", "right")
    assert left["primary_region"] == right["primary_region"] == "temporal_lobe"


def test_abutting_the_falx_does_not_cross():
    # 30 x 60 x 40 mm on the right up to the midline plane, spilling 1 mm over it like a falx contact.
    seg = _block(MID_I - 30, MID_I + 2, j=(90, 150), k=(70, 110))
    result = locate(seg, BRATS_AFFINE)
    assert result["crosses_midline"] is False
    assert result["hemisphere"] == "right"


def test_midline_threshold_is_one_ml_beyond_the_band():
    right = _block(MID_I - 20, MID_I - 5)  # 15 ml on the right
    just_under = _block(MID_I + 5, MID_I + 14, seg=right.copy())  # 0.9 ml on the left
    just_over = _block(MID_I + 5, MID_I + 15, seg=right.copy())  # 1.0 ml on the left
    assert locate(just_under, BRATS_AFFINE)["crosses_midline"] is False
    assert locate(just_over, BRATS_AFFINE)["crosses_midline"] is True
    assert locate(just_under, BRATS_AFFINE, Rules(cross_ml=0.5))["crosses_midline"] is True


@pytest.mark.parametrize(("left_width", "expected"), [(5, "right"), (7, "bilateral"), (30, "bilateral"), (50, "left")])
def test_bilateral_needs_30_percent_on_each_side(left_width, expected):
    seg = _block(MID_I - 16, MID_I - 1)  # 15 columns on the right
    seg = _block(MID_I + 1, MID_I + 1 + left_width, seg=seg)
    assert locate(seg, BRATS_AFFINE)["hemisphere"] == expected


def test_corpus_callosum_tumour_is_midline(anatomy, make_ball):
    from scipy import ndimage

    plane = anatomy["regions"][MID_I] == anatomy_atlas.REGION_VALUES["corpus_callosum"]
    depth = ndimage.distance_transform_edt(plane)  # deepest point of the callosum on the midline plane
    centre = (MID_I, *np.unravel_index(int(depth.argmax()), plane.shape))
    result = locate(make_ball(centre, 5), BRATS_AFFINE)
    assert result["hemisphere"] == "bilateral"
    assert (result["primary_region"], result["primary_region_side"]) == ("corpus_callosum", "midline")
    cc = [r for r in result["regions"] if r["name"] == "corpus_callosum"]
    assert [r["side"] for r in cc] == ["midline"]


def test_healthy_scan(right_frontal):
    result = locate(np.zeros(GRID_SHAPE, np.uint8), BRATS_AFFINE)
    assert result.keys() == locate(right_frontal, BRATS_AFFINE).keys()
    assert result["tumour_found"] is False
    assert result["summary"] == "No tumour found."
    assert result["hemisphere"] is None and result["regions"] == [] and result["eloquent"] == []
    assert result["volumes_ml"]["whole_tumour"] == 0


def test_both_label_schemes_agree(right_frontal):
    internal = locate(right_frontal, BRATS_AFFINE)
    brats2020 = from_internal(right_frontal, BRATS2020)
    assert (brats2020 == 4).any()
    assert locate(brats2020, BRATS_AFFINE) == internal


def test_labels_outside_both_schemes_are_rejected(right_frontal):
    bad = right_frontal.copy()
    bad[bad == 3] = 5
    with pytest.raises(UserError, match=r"outside the brats20\d\d scheme"):
        locate(bad, BRATS_AFFINE, source="bad.nii.gz")


def _shifted(dx: float) -> np.ndarray:
    affine = BRATS_AFFINE.copy()
    affine[0, 3] += dx
    return affine


@pytest.mark.parametrize(
    ("shape", "affine", "why"),
    [
        ((240, 240, 154), BRATS_AFFINE, "shape"),
        ((120, 120, 78), BRATS_AFFINE @ np.diag([2.0, 2.0, 2.0, 1.0]), "2 mm voxels"),
        (GRID_SHAPE, _shifted(5.0), "origin shifted 5 mm"),
        (GRID_SHAPE, np.eye(4), "vasari-style identity header"),
    ],
)
def test_off_grid_label_maps_are_rejected(shape, affine, why):
    with pytest.raises(UserError, match="not on the SRI24 1 mm BraTS grid"):
        locate(np.zeros(shape, np.uint8), affine, source=why)


def test_oblique_header_is_rejected():
    angle = np.deg2rad(10)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    with pytest.raises(UserError, match="oblique.nii.gz: not on the SRI24"):
        locate(np.zeros(GRID_SHAPE, np.uint8), rotation @ BRATS_AFFINE, source="oblique.nii.gz")


def test_eloquent_area_involved_and_reported_on_either_side(deepest, make_ball):
    for side in ("left", "right"):
        result = locate(make_ball(deepest("broca", side), 3), BRATS_AFFINE)
        broca = [e for e in result["eloquent"] if e["name"] == "broca"]
        assert broca and broca[0]["side"] == side and broca[0]["involved"] is True
        named = "left Broca's area" if side == "left" else "right Broca's area homologue"
        assert named in result["summary"]


def test_eloquent_area_within_5_mm_but_not_involved(anatomy):
    from scipy import ndimage

    bit = np.uint8(1 << anatomy_atlas.ELOQUENT.index("primary_motor"))
    motor = (anatomy["eloquent"] & bit) > 0
    box = tuple(slice(max(s.start - 12, 0), s.stop + 12) for s in ndimage.find_objects(motor.astype(np.uint8))[0])
    to_motor = ndimage.distance_transform_edt(~motor[box])
    to_others = ndimage.distance_transform_edt((anatomy["eloquent"][box] & ~bit) == 0)
    in_brain = anatomy["regions"][box] > 0
    origin = np.array([s.start for s in box])
    for low, high, expected in ((3, 3.2, [("primary_motor", False)]), (8, 99, [])):
        voxel = np.argwhere((to_motor >= low) & (to_motor < high) & (to_others > 8) & in_brain)[0] + origin
        seg = np.zeros(GRID_SHAPE, np.uint8)
        seg[tuple(voxel)] = 3
        eloquent = locate(seg, BRATS_AFFINE)["eloquent"]
        assert [(e["name"], e["involved"]) for e in eloquent] == expected
        assert all(low <= e["distance_mm"] <= high for e in eloquent)


def test_ventricles_and_components(deepest, make_ball):
    ventricle = np.argwhere(anatomy_atlas.region_atlas()["regions"] == anatomy_atlas.VENTRICLES)[0]
    near = make_ball(tuple(int(v) for v in ventricle), 3)
    far = make_ball(deepest("frontal_lobe", "right"), 3)
    assert locate(near, BRATS_AFFINE)["touches_ventricles"] is True
    assert locate(far, BRATS_AFFINE)["touches_ventricles"] is False
    two = make_ball(deepest("occipital_lobe", "right"), 3, seg=far.copy())
    result = locate(two, BRATS_AFFINE)
    assert result["n_components"] == 2
    assert "2 separate lesions" in result["summary"]


def test_reoriented_nibabel_image_gives_the_same_answer(left_temporal):
    lps = nib.Nifti1Image(left_temporal, BRATS_AFFINE)
    ras = nib.as_closest_canonical(lps)
    assert nib.aff2axcodes(ras.affine) == ("R", "A", "S")
    assert locate(np.asanyarray(ras.dataobj), ras.affine) == locate(left_temporal, BRATS_AFFINE)


def test_the_largest_lesion_names_the_primary_region(deepest, make_ball):
    seg = make_ball(deepest("frontal_lobe", "right"), 12)
    seg[seg != 0] = 2  # a large, mostly oedematous main lesion...
    seg[deepest("frontal_lobe", "right")] = 1  # ...with a speck of core
    satellite = make_ball(deepest("occipital_lobe", "right"), 5)
    seg[satellite == 3] = 3  # ...and a small satellite holding far more core
    result = locate(seg, BRATS_AFFINE)
    assert result["n_components"] == 2
    assert (result["primary_region"], result["vasari"]["F1"]["value"]) == ("frontal_lobe", "frontal_lobe")


def _brute_force_eloquent(seg: np.ndarray, anatomy: dict, margin_mm: float = 5.0) -> dict:
    """(area, side) -> distance (mm) to the tumour, by a k-d tree over every voxel."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.argwhere(seg > 0))
    found = {}
    for bit, name in enumerate(anatomy_atlas.ELOQUENT):
        points = np.argwhere((anatomy["eloquent"] & (1 << bit)) > 0)
        x = BRATS_AFFINE[0, 0] * points[:, 0] + BRATS_AFFINE[0, 3]
        for side, on_side in (("left", x <= anatomy["midline_x"]), ("right", x >= anatomy["midline_x"])):
            distance = tree.query(points[on_side], distance_upper_bound=margin_mm + 1)[0].min()
            if distance <= margin_mm:
                found[(name, side)] = round(float(distance), 1)
    return found


@pytest.mark.parametrize("layout", ["two distant lesions", "a cloud of specks"])
def test_eloquent_distances_match_brute_force(anatomy, deepest, make_ball, layout):
    if layout == "two distant lesions":  # one small distance box per lesion
        seg = make_ball(deepest("primary_visual", "left"), 6, seg=make_ball(deepest("broca", "right"), 5))
    else:  # 1000 one-voxel specks: one box around them all is cheaper
        seg = np.zeros(GRID_SHAPE, np.uint8)
        seg[tuple(slice(c - 10, c + 10, 2) for c in deepest("primary_motor", "right"))] = 2
    eloquent = locate(seg, BRATS_AFFINE)["eloquent"]
    assert {(e["name"], e["side"]): e["distance_mm"] for e in eloquent} == _brute_force_eloquent(seg, anatomy)
    assert all(e["involved"] == (e["distance_mm"] == 0) for e in eloquent)


def test_pieces_under_the_lesion_gap_apart_are_one_lesion(deepest, make_ball):
    centre = deepest("frontal_lobe", "right")
    seg = make_ball(centre, 8)
    for gap, expected in ((3, 1), (8, 2)):
        strip = seg.copy()
        # A 2 mm thick slab of oedema `gap` voxels beyond the ball along the first axis (x = -i: to its right).
        start = centre[0] + 8 + 1 + gap
        strip[start : start + 2, centre[1] - 4 : centre[1] + 5, centre[2] - 4 : centre[2] + 5] = 2
        result = locate(strip, BRATS_AFFINE)
        assert result["n_components"] == expected
        assert ("separate lesions" in result["summary"]) is (expected > 1)


def test_the_lesion_gap_is_the_distance_between_the_nearest_voxels(deepest):
    i, j, k = deepest("frontal_lobe", "right")
    for offset, expected in (((4, 2, 2), 1), ((3, 3, 3), 2), ((5, 0, 0), 2), ((0, 0, 4), 1)):  # 4.90, 5.20, 5, 4 mm
        seg = np.zeros(GRID_SHAPE, np.uint8)
        seg[i : i + 5, j : j + 5, k : k + 5] = 2  # two 0.125 ml blocks, their nearest corners `offset` apart
        a, b, c = (x + 4 + d for x, d in zip((i, j, k), offset, strict=True))
        seg[a : a + 5, b : b + 5, c : c + 5] = 2
        assert locate(seg, BRATS_AFFINE)["n_components"] == expected, offset
