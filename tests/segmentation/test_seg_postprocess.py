"""Post-processing after the network: small components, the core of enhancing tumours, ring completion."""

import numpy as np
from scipy import ndimage as ndi

from neurotriage.cli import main
from neurotriage.segmentation.postprocess import (
    PostProcess,
    drop_small_components,
    fill_enclosed_core,
    grow_enhancement,
    relabel_detached_core,
    relabel_small_enhancement,
    relabel_unenclosed_core,
)


def _labels() -> np.ndarray:
    labels = np.zeros((40, 40, 40), np.uint8)
    labels[5:20, 5:20, 5:20] = 2  # 3.375 ml of oedema around...
    labels[10:15, 10:15, 10:15] = 3  # ...an enhancing core: one component, two labels
    labels[30:34, 30:34, 30:34] = 1  # a 0.064 ml speck
    labels[30, 5, 5] = 2  # one voxel
    return labels


def test_specks_go_and_the_lesion_keeps_its_labels():
    labels = _labels()
    cleaned = drop_small_components(labels, (1.0, 1.0, 1.0), 0.5)
    assert not cleaned[30:34, 30:34, 30:34].any() and cleaned[30, 5, 5] == 0
    np.testing.assert_array_equal(cleaned[:25, :25, :25], labels[:25, :25, :25])
    assert cleaned.dtype == labels.dtype


def test_volume_uses_the_voxel_spacing_and_zero_keeps_everything():
    labels = _labels()
    # 2 mm voxels: the 64-voxel speck is 0.512 ml, just over the limit; the single voxel is 0.008 ml.
    cleaned = drop_small_components(labels, (2.0, 2.0, 2.0), 0.5)
    assert cleaned[30:34, 30:34, 30:34].all() and cleaned[30, 5, 5] == 0
    np.testing.assert_array_equal(drop_small_components(labels, (1.0, 1.0, 1.0), 0), labels)


def test_diagonal_neighbours_are_one_component():
    labels = np.zeros((32, 32, 32), np.uint8)
    for i in range(8):  # 8 cubes of 64 voxels touching corner to corner: 0.512 ml together, 0.064 ml each
        labels[4 * i : 4 * i + 4, 4 * i : 4 * i + 4, 4 * i : 4 * i + 4] = 2
    assert drop_small_components(labels, (1.0, 1.0, 1.0), 0.5).sum() == labels.sum()


def test_tiny_enhancement_becomes_core_and_enough_stays():
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:25, 5:25, 5:25] = 2
    labels[10:15, 10:15, 10:14] = 3  # 0.1 ml of enhancement
    labels[10:15, 10:15, 14:16] = 1
    relabelled = relabel_small_enhancement(labels, (1.0, 1.0, 1.0), 0.5)
    assert not (relabelled == 3).any()
    np.testing.assert_array_equal(relabelled > 0, labels > 0)  # whole tumour untouched
    np.testing.assert_array_equal(np.isin(relabelled, (1, 3)), np.isin(labels, (1, 3)))  # core untouched
    np.testing.assert_array_equal(relabel_small_enhancement(labels, (1.0, 1.0, 1.0), 0.1), labels)


def test_enhancement_in_a_dropped_speck_does_not_count():
    labels = _labels()  # 0.125 ml of enhancement in the lesion
    labels[36:40, 36:40, 36:40] = 3  # 0.064 ml enhancing speck, dropped first
    cleaned = PostProcess(min_component_ml=0.1, min_enhancing_ml=0.15).apply(labels, (1.0, 1.0, 1.0))
    assert not (cleaned == 3).any() and (cleaned[10:15, 10:15, 10:15] == 1).all()


def _ring_with_necrosis_and_a_dense_patch() -> np.ndarray:
    """A 30 mm enhancing ring around necrosis whose centre is 12 mm from it, in oedema holding a
    separate non-enhancing 'core' blob 9 mm from the ring."""
    labels = np.zeros((60, 40, 40), np.uint8)
    labels[2:58, 2:38, 2:38] = 2
    x, y, z = np.ogrid[:60, :40, :40]
    r = np.sqrt((x - 20) ** 2 + (y - 20) ** 2 + (z - 20) ** 2)
    labels[r < 15] = 3
    labels[r < 12] = 1
    labels[43:53, 15:25, 15:25] = 1
    return labels


def test_core_away_from_the_enhancement_becomes_oedema_and_necrosis_stays():
    labels = _ring_with_necrosis_and_a_dense_patch()
    relabelled = relabel_detached_core(labels, (1.0, 1.0, 1.0), 2.0)
    assert (relabelled[43:53, 15:25, 15:25] == 2).all()  # the detached blob
    np.testing.assert_array_equal(relabelled[:40], labels[:40])  # ring and the whole necrosis, centre too
    np.testing.assert_array_equal(relabelled > 0, labels > 0)  # whole tumour untouched


def test_detached_core_uses_the_spacing_and_needs_enhancement():
    labels = _ring_with_necrosis_and_a_dense_patch()
    # The blob lies 9 voxels from the ring: a gap of 8 mm at 1 mm voxels, 4 mm at 0.5 mm voxels.
    assert (relabel_detached_core(labels, (1.0, 1.0, 1.0), 9.0)[43:53, 15:25, 15:25] == 1).all()
    assert (relabel_detached_core(labels, (0.5, 0.5, 0.5), 5.0)[43:53, 15:25, 15:25] == 1).all()
    assert (relabel_detached_core(labels, (0.5, 0.5, 0.5), 3.0)[43:53, 15:25, 15:25] == 2).all()
    np.testing.assert_array_equal(relabel_detached_core(labels, (1.0, 1.0, 1.0), 0), labels)
    no_enhancement = np.where(labels == 3, 1, labels).astype(np.uint8)
    np.testing.assert_array_equal(relabel_detached_core(no_enhancement, (1.0, 1.0, 1.0), 2.0), no_enhancement)


def test_negative_min_component_is_a_user_error(tiny_cohort, tmp_path, capsys):
    out = tmp_path / "seg.nii.gz"
    args = ["segment", str(tiny_cohort / "TINY_000"), "--out", str(out), "--min-component-ml", "-1"]
    assert main(args) == 2
    assert "--min-component-ml: min component ml -1.0 must be 0 or more" in capsys.readouterr().err
    assert not out.exists()


def test_detached_core_keeps_a_separate_tumour_that_does_not_enhance():
    labels = np.zeros((80, 40, 40), np.uint8)
    labels[5:35, 5:35, 5:35] = 2
    labels[12:28, 12:28, 12:28] = 3
    labels[15:25, 15:25, 15:25] = 1  # an enhancing tumour with its necrosis
    labels[50:75, 10:30, 10:30] = 2
    labels[58:68, 15:25, 15:25] = 1  # a second, non-enhancing tumour 15 mm away
    np.testing.assert_array_equal(relabel_detached_core(labels, (1.0, 1.0, 1.0), 2.0), labels)


def test_necrosis_touching_its_ring_stays_at_coarse_spacing():
    labels = _ring_with_necrosis_and_a_dense_patch()
    for spacing in ((2.5, 2.5, 2.5), (1.0, 1.0, 3.0)):
        relabelled = relabel_detached_core(labels, spacing, 2.0)
        np.testing.assert_array_equal(relabelled[:40], labels[:40])
        assert (relabelled[43:53, 15:25, 15:25] == 2).all()


def _ring_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A T1ce-bright spherical shell (radius 8-11 voxels) in oedema, its top half labelled enhancing."""
    grid = np.indices((64, 64, 64)) - 24
    r = np.sqrt((grid**2).sum(0))
    shell = (r >= 8) & (r <= 11)
    t1ce = np.full(r.shape, 100.0, np.float32)  # normal brain
    t1ce[shell] = 180.0
    labels = np.where(r <= 16, 2, 0).astype(np.uint8)
    labels[shell & (grid[2] >= 0)] = 3
    return labels, t1ce, shell


def test_enhancement_grows_around_its_ring_and_no_further():
    labels, t1ce, shell = _ring_scene()
    t1ce[24, 24, 36:64] = 180.0  # a bright vessel leaving the ring's top, out of reach after 14 voxels
    t1ce[50:54, 2:5, 2:5] = 180.0  # bright but not connected to the ring...
    labels[51, 3, 3] = 3  # ...where an enhancing speck too small to seed growth lies
    t1ce[24, 17:21, 24] = 150.0  # connected but fainter than the ring
    grown = grow_enhancement(labels, t1ce, t1ce > 0, (1.0, 1.0, 1.0), 14.0)
    assert (grown[shell] == 3).all()  # the bottom pole lies 13.6 voxels from the top half
    assert (grown[24, 24, 36:50] == 3).all() and (grown[24, 24, 51:] != 3).all()
    assert (grown[50:54, 2:5, 2:5] == 3).sum() == 1 and not (grown[24, 17:21, 24] == 3).any()
    np.testing.assert_array_equal(grow_enhancement(labels, t1ce, t1ce > 0, (1.0, 1.0, 1.0), 0.0), labels)


def test_growth_never_goes_below_a_floor_over_normal_brain():
    labels, t1ce, _ = _ring_scene()
    labels[44:54, 44:54, 44:64] = 3  # enhancement as bright as normal brain drags the 10th percentile down...
    t1ce[24, 24, 12:16] = 120.0  # ...but tissue only 1.2x normal brain stays out
    t1ce[24, 28, 12:16] = 140.0  # and 1.4x grows
    grown = grow_enhancement(labels, t1ce, t1ce > 0, (1.0, 1.0, 1.0), 14.0)
    assert (grown[24, 24, 12:16] != 3).all() and (grown[24, 28, 12:16] == 3).all()


def test_what_a_ring_with_a_gap_encloses_becomes_core_and_a_cup_does_not():
    labels, _, shell = _ring_scene()
    grid = np.indices(labels.shape) - 24
    labels[shell] = 3
    labels[shell & (np.abs(grid[0]) <= 2) & (np.abs(grid[1]) <= 2) & (grid[2] > 0)] = 2  # a 5-voxel gap
    filled = fill_enclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 20.0)
    inside = np.sqrt((grid**2).sum(0)) < 8
    assert (filled[inside] == 1).all()
    assert (filled[~inside & ~shell] == labels[~inside & ~shell]).all()
    cup = np.where(shell & (grid[2] <= 0), 3, labels * (labels != 3)).astype(np.uint8)
    assert not (fill_enclosed_core(cup, cup >= 0, (1.0, 1.0, 1.0), 20.0) == 1)[inside & (grid[2] > 2)].any()
    np.testing.assert_array_equal(fill_enclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 0.0), labels)


def test_a_tumour_without_enhancement_is_not_filled():
    labels, _, shell = _ring_scene()
    labels[shell] = 1  # a shell of non-enhancing core
    np.testing.assert_array_equal(fill_enclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 20.0), labels)


def test_the_ring_is_finished_only_when_the_t1ce_is_given():
    labels, t1ce, shell = _ring_scene()
    post = PostProcess(min_component_ml=0, min_enhancing_ml=0, core_contact_mm=0, ring_growth_mm=14)
    assert (post.apply(labels, (1.0, 1.0, 1.0)) == labels).all()
    finished = post.apply(labels, (1.0, 1.0, 1.0), t1ce)
    inside = np.sqrt(((np.indices(labels.shape) - 24) ** 2).sum(0)) < 8
    assert (finished[shell] == 3).all() and (finished[inside] == 1).all()


def _shell(shape: tuple[int, ...], centre: tuple[int, ...], inner: float, outer: float) -> tuple[np.ndarray, ...]:
    """(shell, inside) masks of a spherical shell in voxels."""
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(np.indices(shape), centre, strict=True)))
    return (r >= inner) & (r <= outer), r < inner


def test_a_necrosis_wider_than_the_reach_fills_completely():
    shell, inside = _shell((64, 64, 64), (32, 32, 32), 22, 26)  # 44 voxels across, reach 20
    labels = np.where(inside, 2, 0).astype(np.uint8)
    labels[shell] = 3
    filled = fill_enclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 20.0)
    assert (filled[inside] == 1).all()


def test_only_the_enhancing_tumour_is_filled_beside_a_hollow_one_that_does_not_enhance():
    labels = np.zeros((40, 40, 80), np.uint8)
    ring, ring_inside = _shell(labels.shape, (20, 20, 20), 6, 8)
    hollow, hollow_inside = _shell(labels.shape, (20, 20, 60), 6, 8)
    labels[ring_inside | hollow_inside] = 2
    labels[ring], labels[hollow] = 3, 1
    filled = fill_enclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 20.0)
    assert (filled[ring_inside] == 1).all() and (filled[hollow_inside] == 2).all()


def test_growth_respects_the_spacing_and_the_brain():
    labels, t1ce, shell = _ring_scene()
    t1ce[24, 24, 36:64] = 180.0  # a bright line leaving the ring along the 2 mm axis
    t1ce[24, 0:13, 24] = 180.0  # and one along a 1 mm axis, outside the brain beyond y = 8
    brain = np.ones(t1ce.shape, bool)
    brain[:, :9, :] = False
    grown = grow_enhancement(labels, t1ce, brain, (1.0, 1.0, 2.0), 10.0)
    assert (grown[24, 24, 36:41] == 3).all() and (grown[24, 24, 41:] != 3).all()  # 5 voxels = 10 mm
    assert (grown[24, 9:13, 24] == 3).all() and (grown[24, :9, 24] != 3).all()


def test_lesions_far_apart_keep_the_floor_over_normal_brain():
    labels, t1ce, _ = _ring_scene()
    labels[44:54, 44:54, 44:64] = 3  # faint enhancement drags the 10th percentile down
    labels[0:8, 0:8, 0:8] = labels[56:64, 56:64, 0:8] = 2  # lesions in far corners: their box is the brain
    grown = grow_enhancement(labels, t1ce, t1ce > 0, (1.0, 1.0, 1.0), 14.0)
    assert not ((grown == 3) & (labels == 0) & (t1ce == 100.0)).any()


def _ring_with_an_attached_dense_patch() -> tuple[np.ndarray, ...]:
    """A closed enhancing ring (necrosis inside) and a non-enhancing core patch touching it from outside."""
    labels = np.zeros((48, 48, 48), np.uint8)
    ring, inside = _shell(labels.shape, (24, 24, 24), 6, 8)
    grid = np.indices(labels.shape)
    beside = (grid[0] > 24) & (grid[0] < 44) & (np.abs(grid[1] - 24) <= 4) & (np.abs(grid[2] - 24) <= 4)
    patch = beside & ~ring & ~inside
    labels[(np.sqrt(((grid - 24) ** 2).sum(0)) <= 16)] = 2  # oedema around it all
    labels[inside | patch] = 1
    labels[ring] = 3
    return labels, ring, inside, patch


def test_core_the_ring_neither_encloses_nor_touches_becomes_oedema():
    labels, ring, inside, patch = _ring_with_an_attached_dense_patch()
    out = relabel_unenclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 2.0, 20.0)
    gap = ndi.distance_transform_edt(~ring)
    assert (out[inside] == 1).all() and (out[ring] == 3).all()
    assert (out[patch & (gap <= 3)] == 1).all()  # within 2 mm of the ring (touching voxels are 1 mm apart)
    assert (out[patch & (gap > 3)] == 2).all() and (patch & (gap > 3)).sum() > 500
    assert (out[~patch] == labels[~patch]).all()
    # The component-wise step keeps the patch: it touches the ring.
    np.testing.assert_array_equal(relabel_detached_core(labels, (1.0, 1.0, 1.0), 2.0), labels)


def test_unenclosed_core_keeps_necrosis_behind_a_gap_and_spares_tumours_without_enhancement():
    labels, ring, inside, _ = _ring_with_an_attached_dense_patch()
    grid = np.indices(labels.shape) - 24
    labels[ring & (np.abs(grid[0]) <= 2) & (np.abs(grid[1]) <= 2) & (grid[2] > 0)] = 2  # a 5-voxel gap
    out = relabel_unenclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 2.0, 20.0)
    # The voxels right under the gap look out through it in too many directions, but join enclosed core.
    assert (out[inside] == 1).all()
    plain = np.where(labels > 0, np.where(labels == 3, 1, labels), 0).astype(np.uint8)  # no enhancement at all
    np.testing.assert_array_equal(relabel_unenclosed_core(plain, plain >= 0, (1.0, 1.0, 1.0), 2.0, 20.0), plain)
    for contact, reach in ((0.0, 20.0), (2.0, 0.0)):
        off = relabel_unenclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), contact, reach)
        np.testing.assert_array_equal(off, labels)


def test_the_unenclosed_core_goes_only_when_the_t1ce_is_given():
    labels, ring, inside, patch = _ring_with_an_attached_dense_patch()
    post = PostProcess(min_component_ml=0, min_enhancing_ml=0, ring_growth_mm=0)
    t1ce = np.where(ring, 2.0, 1.0).astype(np.float32)
    assert (post.apply(labels, (1.0, 1.0, 1.0))[patch] == 1).all()
    finished = post.apply(labels, (1.0, 1.0, 1.0), t1ce)
    assert (finished[inside] == 1).all() and (finished[patch] == 2).sum() > 500


def test_necrosis_under_a_cap_that_covers_part_of_it_stays():
    labels = np.zeros((48, 48, 48), np.uint8)
    shell, inside = _shell(labels.shape, (24, 24, 24), 8, 10)
    up = np.indices(labels.shape)[2] >= 24
    labels[_shell(labels.shape, (24, 24, 24), 0, 16)[0]] = 2
    labels[inside] = 1  # the network's necrosis, under enhancement traced over its upper half only
    labels[shell & up] = 3
    out = relabel_unenclosed_core(labels, labels >= 0, (1.0, 1.0, 1.0), 2.0, 20.0)
    np.testing.assert_array_equal(out, labels)
