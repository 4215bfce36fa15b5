"""Generator v9: oedema labelled where visible, thick slices, non-enhancing rims, randomised contrast."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage as ndi

from neurotriage.errors import UserError
from neurotriage.imaging import synth
from neurotriage.imaging.naming import SEQUENCES
from neurotriage.imaging.synth import case_contrast, check_generator, generate_case
from neurotriage.imaging.synth_draws import FLAIR, SLOT, T1, T1CE, T2, physics, randomised
from neurotriage.imaging.synth_oedema import CORTEX_SHARE, FAINT_EXCESS, oedema_field, oedema_tissue, visible_oedema
from neurotriage.imaging.synth_slices import AXIS_NAMES, SliceStack, thick_slices, world_axis
from neurotriage.imaging.synth_tissue import Anatomy
from neurotriage.imaging.synth_tumour import (
    PAINT_EDEMA,
    PAINT_ENHANCING,
    PAINT_NECROSIS,
    PAINT_SOLID,
    LesionPlan,
    Site,
    _rim,
)


@pytest.fixture(scope="module")
def enhancing_v9() -> tuple[synth.SynthCase, dict]:
    """A v9 enhancing case, and the FLAIR excess and threshold its oedema label was read from."""
    seen = {}

    def spy(excess, threshold, core, brain):
        seen.update(excess=excess, threshold=threshold, core=core, brain=brain)
        return visible_oedema(excess, threshold, core, brain)

    patch = pytest.MonkeyPatch()
    patch.setattr(synth, "visible_oedema", spy)
    try:
        case = generate_case(40, "V9_E", kind="enhancing", lobe="frontal_lobe", hemisphere="right", generator="v9")
    finally:
        patch.undo()
    return case, seen


@pytest.fixture(scope="module")
def non_enhancing_v9() -> synth.SynthCase:
    return generate_case(41, "V9_N", kind="non_enhancing", lobe="temporal_lobe", hemisphere="left", generator="v9")


def crop_of(case: synth.SynthCase, seen: dict) -> np.ndarray:
    """The case's labels cut to the box its excess map covers (located by the core mask)."""
    core = (case.seg == 1) | (case.seg == 3)
    lo = np.argwhere(core).min(axis=0) - np.argwhere(seen["core"]).min(axis=0)
    box = tuple(slice(int(a), int(a) + n) for a, n in zip(lo, seen["core"].shape, strict=True))
    return case.seg[box]


def test_oedema_label_is_where_the_excess_is_visible(enhancing_v9) -> None:
    case, seen = enhancing_v9
    seg, excess, threshold = crop_of(case, seen), seen["excess"], seen["threshold"]
    assert 0.05 <= threshold <= 0.15 and case.truth["oedema"]["visible_excess"] == round(threshold, 3)
    oedema = seg == 2
    assert oedema.sum() > 1000 and (excess[oedema] >= threshold).all()
    faint = (excess >= FAINT_EXCESS) & (excess < threshold) & ~seen["core"]
    assert faint.sum() > 1000 and not oedema[faint].any()  # blended in, but too faint to be labelled
    # Every visible, non-core voxel joined to the tumour is labelled.
    assert (oedema == visible_oedema(excess, threshold, seen["core"], seen["brain"])).all()
    assert case.truth["oedema"]["labelled_ml"] == case.truth["volumes_ml"]["edema"]


def test_the_oedema_fall_off_follows_white_matter_and_spares_the_cortex() -> None:
    shape = (48, 48, 48)
    codes = np.zeros(shape, np.uint8)
    codes[20:28, 20:28, 20:28] = PAINT_EDEMA
    wm, gm, csf = (np.zeros(shape, np.float32) for _ in range(3))
    wm[:24], gm[24:40], csf[40:] = 1, 1, 1  # white matter on one side of the lesion, cortex, then CSF
    tissue = oedema_tissue(Anatomy(np.zeros(shape, np.float32), np.ones(shape, bool), wm, gm, csf, codes))
    field = oedema_field(np.random.default_rng(3), codes, np.ones(shape, np.float32), None, tissue)
    weight = np.zeros(shape, np.float32)
    weight[field.box] = field.weight
    distance = ndi.distance_transform_edt(codes == 0)
    ring = (distance >= 1) & (distance <= 4)
    white, cortex = weight[ring & (wm == 1)].mean(), weight[ring & (gm == 1)].mean()
    assert white > 0.05 and 0.5 * CORTEX_SHARE < cortex / white < 2 * CORTEX_SHARE
    assert not weight[csf == 1].any() and (weight[codes == PAINT_EDEMA] >= 0.6).all()


def test_visibility_rule_thresholds_and_needs_contact_with_the_tumour() -> None:
    excess = np.zeros((12, 12, 12), np.float32)
    core = np.zeros(excess.shape, bool)
    core[5:7, 5:7, 5:7] = True
    excess[4, 4:8, 4:8] = 0.11  # touching the core, above a 0.1 threshold
    excess[7, 4:8, 4:8] = 0.09  # touching the core, below it
    excess[0:2, 0:2, 0:2] = 0.5  # bright but apart from the tumour
    brain = np.ones(excess.shape, bool)
    label = visible_oedema(excess, 0.1, core, brain)
    assert label[4, 4:8, 4:8].all() and not label[7].any() and not label[:2, :2, :2].any()
    assert not (label & core).any()
    assert not visible_oedema(excess, 0.1, np.zeros_like(core), brain).any()


@pytest.mark.slow
def test_v9_oedema_edge_is_fainter_than_v5s() -> None:
    def edge_flair(case):
        """Median FLAIR on the outline's oedema, in white matter, over white matter 10-20 mm out."""
        flair, lesion = case.images["flair"].astype(np.float32), case.seg > 0
        distance = ndi.distance_transform_edt(~lesion)
        white = synth.sri24.template_and_masks()["template"] > 0.9
        near = ndi.binary_erosion(white, iterations=2) & (distance > 10) & (distance <= 20) & (flair > 0)
        edge = lesion & ~ndi.binary_erosion(lesion) & (case.seg == 2) & white
        return float(np.median(flair[edge]) / np.median(flair[near]))

    kw = {"kind": "enhancing", "lobe": "parietal_lobe", "hemisphere": "left"}
    v5, v9 = (generate_case(12, "EDGE", generator=g, **kw) for g in ("v5", "v9"))
    # v5 labels only the painted bulk (its edge 1.4-2x white matter); v9 labels out to the faint edge.
    assert edge_flair(v9) < edge_flair(v5) - 0.3
    assert v9.truth["volumes_ml"]["whole_tumour"] > v5.truth["volumes_ml"]["whole_tumour"]


def test_thick_slices_blur_along_their_axis_only() -> None:
    image = np.zeros((9, 10, 40), np.float32)
    image[4, 5, 20] = 1.0
    out = thick_slices(image, SliceStack(axis=2, thickness=5, phase=0))
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.count_nonzero(out[4, 5]) >= 5 and not out[:4].any() and not out[:, :5].any()  # through plane only
    np.testing.assert_allclose(out.sum(), 1.0, rtol=0.05)  # about as much signal, spread over the slab
    assert out[4, 5].max() <= 0.2 + 1e-6  # one voxel of a 5-voxel slab
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32), (3, 4, 40))
    again = thick_slices(ramp, SliceStack(axis=2, thickness=4, phase=1))
    np.testing.assert_allclose(again[..., 4:-4], ramp[..., 4:-4], atol=1e-4)  # linear stays linear inside
    plane = np.random.default_rng(0).random((6, 7, 1)).astype(np.float32) * np.ones((1, 1, 30), np.float32)
    np.testing.assert_allclose(thick_slices(plane, SliceStack(2, 6, 3)), plane, atol=1e-6)  # in-plane detail kept


def test_slab_means_land_on_slab_centres() -> None:
    line = np.random.default_rng(1).random(30).astype(np.float32)
    out = thick_slices(line.reshape(1, 1, 30), SliceStack(axis=2, thickness=5, phase=2))[0, 0]
    for start in range(2, 26, 5):
        assert out[start + 2] == pytest.approx(line[start : start + 5].mean(), abs=1e-5)


def test_thick_slice_case_is_blurred_through_plane(non_enhancing_v9) -> None:
    stacks = non_enhancing_v9.truth["thick_slices"]
    assert set(stacks) == set(SEQUENCES)
    stack = stacks["flair"]
    if stack is None:
        pytest.skip("this seed drew 1 mm slices")
    flair = non_enhancing_v9.images["flair"].astype(np.float32)
    axis = next(a for a in range(3) if AXIS_NAMES[world_axis(a)] == stack["plane"])
    brain = ndi.binary_erosion(flair > 0, iterations=8)
    steps = [np.abs(np.diff(flair, axis=a)) for a in range(3)]
    inside = [brain[tuple(slice(0, -1) if b == a else slice(None) for b in range(3))] for a in range(3)]
    sharpness = [float(np.mean(s[m])) for s, m in zip(steps, inside, strict=True)]
    assert sharpness[axis] < 0.7 * min(s for a, s in enumerate(sharpness) if a != axis)


def test_non_enhancing_core_is_t2_bright_inside_a_flair_halo(non_enhancing_v9) -> None:
    case = non_enhancing_v9
    core, oedema = case.seg == 1, case.seg == 2
    assert not (case.seg == 3).any() and core.any() and oedema.any()
    shell = ndi.binary_dilation(core, iterations=2) & ~core & (case.images["flair"] > 0)
    assert (oedema[shell]).mean() > 0.6  # the halo surrounds most of the core
    med = {
        k: {n: float(np.median(case.images[k][m])) for n, m in (("core", core), ("oedema", oedema))} for k in SEQUENCES
    }
    template = synth.sri24.template_and_masks()["template"]
    white = ndi.binary_erosion(template > 0.95, iterations=2) & ~ndi.binary_dilation(case.seg > 0, iterations=15)
    wm = {k: float(np.median(case.images[k][white & (case.images[k] > 0)])) for k in SEQUENCES}
    assert med["t2"]["core"] > 1.3 * med["t2"]["oedema"]  # the solid mass is the T2-bright part
    assert med["flair"]["oedema"] > 1.05 * wm["flair"]  # the halo shows on FLAIR ...
    assert med["t2"]["oedema"] - wm["t2"] < 0.5 * (med["t2"]["core"] - wm["t2"])  # ... far less on T2


def rim_volumes(rim_mm: float, seed: int) -> tuple[int, np.ndarray]:
    """Oedema voxels of a rim around a ball core, and its thickness in 26 directions."""
    shape = (61, 61, 61)
    grid = np.indices(shape) - 30
    core = (grid**2).sum(0) <= 10**2
    full = np.ones(shape, bool)
    site = Site(tuple(slice(0, n) for n in shape), full, np.zeros(shape, np.float32), full, np.ones(shape), full)
    plan = LesionPlan("frontal_lobe", "left", np.full(3, 30.0), 10.0, 1.5, False, 0.0, 0.0, rim_mm)
    edema, strength = _rim(np.random.default_rng(seed), plan, site, core)
    distance = ndi.distance_transform_edt(~core)
    directions = [np.array(d) for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)]
    reach = []
    for d in directions:
        step = (d - 1) / np.linalg.norm(d - 1)
        points = [np.round(30 + step * r).astype(int) for r in np.arange(10, 30, 0.5)]
        reach.append(max([distance[tuple(p)] for p in points if edema[tuple(p)]], default=0.0))
    assert ((strength > 0) <= edema).all()
    return int(edema.sum()), np.array(reach)


def test_non_enhancing_rim_thickness_varies_around_and_between_tumours() -> None:
    thin, thin_reach = rim_volumes(2.0, 0)
    thick, thick_reach = rim_volumes(8.0, 0)
    assert thick > 3 * thin  # the core / oedema ratio varies with the drawn rim
    assert thick_reach.max() > 1.5 * np.median(thick_reach)  # wider on some sides than on others
    assert np.median(thin_reach) <= 4


def test_randomised_contrast_varies_per_class_and_is_reproducible() -> None:
    a, b, again = (randomised(np.random.default_rng(seed)) for seed in (3, 4, 3))
    np.testing.assert_array_equal(a.tissue, again.tissue)
    np.testing.assert_array_equal(a.lesion, again.lesion)
    assert a.stacks == again.stacks
    assert not np.allclose(a.tissue, b.tissue) and not np.allclose(a.lesion, b.lesion)
    draws = [randomised(np.random.default_rng(s)) for s in range(200)]
    gm_t1 = np.array([d.tissue[1, T1] for d in draws])
    assert gm_t1.min() < 0.5 and gm_t1.max() > 2  # grey matter darker or brighter than white matter on T1
    assert len({d.stacks[FLAIR] is None for d in draws}) == 2  # some sequences thick, others not
    for d in draws:
        assert np.all(d.tissue[0] == 1)
        assert d.lesion[SLOT[PAINT_EDEMA], FLAIR] >= 1.3  # what defines the labels holds in every draw
        assert d.lesion[SLOT[PAINT_ENHANCING], T1CE] >= 1.3 * d.lesion[SLOT[PAINT_ENHANCING], T1] - 1e-9
        for code in (PAINT_NECROSIS, PAINT_SOLID):
            assert d.lesion[SLOT[code], T1CE] < d.lesion[SLOT[PAINT_ENHANCING], T1CE]
        assert d.lesion[SLOT[PAINT_SOLID], T2] >= 1.3 * d.lesion[SLOT[PAINT_EDEMA], T2] - 1e-9
    look = physics(np.random.default_rng(3), non_enhancing=True)
    assert look.mode == "physics" and look.shared_bias and look.dense_scale == 0


def test_randomised_case_is_reproducible_by_seed() -> None:
    first, second = (generate_case(9, "R", kind="enhancing", generator="v9", contrast="random") for _ in range(2))
    assert first.truth["contrast"] == "random"
    for key in SEQUENCES:
        np.testing.assert_array_equal(first.images[key], second.images[key])
    np.testing.assert_array_equal(first.seg, second.seg)


def test_random_share_picks_cases_by_their_own_draw() -> None:
    picks = [case_contrast(7, i, 0.5) for i in range(40)]
    assert {"physics", "random"} == set(picks) and picks == [case_contrast(7, i, 0.5) for i in range(40)]
    assert all(case_contrast(7, i, 0.0) == "physics" for i in range(40))
    assert all(case_contrast(7, i, 1.0) == "random" for i in range(40))
    # A larger share keeps the cases a smaller one randomised.
    assert all(case_contrast(7, i, 0.8) == "random" for i, p in enumerate(picks) if p == "random")


@pytest.mark.parametrize(
    ("generator", "share", "field"),
    [("v7", 0.0, "generator"), ("v5", 0.5, "random_contrast"), ("v9", 1.5, "random_contrast")],
)
def test_bad_generator_settings_are_user_errors(generator, share, field) -> None:
    with pytest.raises(UserError) as error:
        check_generator(generator, share)
    assert error.value.field == field


def test_synth_command_writes_a_v9_cohort(tmp_path) -> None:
    from neurotriage.cli import main

    assert main(["synth", str(tmp_path / "bad"), "--n", "1", "--random-contrast", "0.5"]) == 2  # v5: physics only
    assert not (tmp_path / "bad").exists()
    assert main(["synth", str(tmp_path / "out"), "--n", "1", "--generator", "v9", "--random-contrast", "1"]) == 0
    truth = json.loads((tmp_path / "out" / "SYN_0000" / "truth.json").read_text())
    assert (truth["generator"], truth["contrast"]) == ("v9", "random")
