"""The anatomy atlas: vocabulary, label volumes, midline, atlas sources and handedness."""

from __future__ import annotations

import re

import numpy as np
import pytest

from neurotriage.anatomy import atlas as anatomy_atlas
from neurotriage.anatomy.atlas import ELOQUENT, ELOQUENT_SOURCES, LOBES, MNI_REGION_SOURCES, REGION_VALUES, Source
from neurotriage.anatomy.registration import recorded_mni_to_sri24
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE

VOCABULARY_LOBES = {
    "frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula", "cerebellum", "brainstem",
    "thalamus", "corpus_callosum", "internal_capsule", "basal_ganglia",
}  # fmt: skip
VOCABULARY_AREAS = {
    "primary_motor", "primary_somatosensory", "broca", "wernicke", "primary_visual", "optic_radiation",
    "corticospinal_tract", "medial_temporal",
}  # fmt: skip


def test_vocabulary_is_the_shared_one():
    assert set(LOBES) == VOCABULARY_LOBES
    assert set(ELOQUENT) == VOCABULARY_AREAS == set(ELOQUENT_SOURCES)


def test_volumes_are_compact_and_on_the_grid(anatomy):
    assert anatomy["regions"].shape == anatomy["eloquent"].shape == anatomy["cortex"].shape == GRID_SHAPE
    assert anatomy["regions"].dtype == anatomy["eloquent"].dtype == np.uint8
    assert anatomy["cortex"].dtype == bool


def _x(mask: np.ndarray) -> np.ndarray:
    return BRATS_AFFINE[0, 0] * np.nonzero(mask)[0] + BRATS_AFFINE[0, 3]


@pytest.mark.parametrize("name", [*LOBES, "ventricles"])
def test_every_region_has_a_plausible_size_on_both_sides(anatomy, name):
    x = _x(anatomy["regions"] == REGION_VALUES[name])
    mid = float(anatomy["midline_x"])
    left, right = np.count_nonzero(x < mid) / 1000, np.count_nonzero(x > mid) / 1000
    assert 2 < left + right < 700
    assert 0.6 < left / right < 1.6


@pytest.mark.parametrize("bit", range(len(ELOQUENT)), ids=ELOQUENT)
def test_every_eloquent_area_lies_on_both_sides(anatomy, bit):
    x = _x((anatomy["eloquent"] & (1 << bit)) > 0)
    mid = float(anatomy["midline_x"])
    assert np.count_nonzero(x < mid) > 2000 and np.count_nonzero(x > mid) > 2000


def test_midline_is_near_but_not_assumed_at_the_grid_centre(anatomy):
    grid_centre_x = BRATS_AFFINE[0, 0] * (GRID_SHAPE[0] - 1) / 2 + BRATS_AFFINE[0, 3]
    assert abs(float(anatomy["midline_x"]) - grid_centre_x) < 5


def test_template_midline_finds_the_mirror_plane():
    rng = np.random.default_rng(0)
    half = rng.random((40, 30, 20)).astype(np.float32)
    volume = np.zeros((120, 30, 20), np.float32)
    volume[60:100] = half
    volume[20:60] = half[::-1]  # mirror plane between indices 59 and 60: i = 59.5
    assert anatomy_atlas.template_midline_x(volume) == pytest.approx(-59.5)


@pytest.mark.parametrize(
    "source", [*MNI_REGION_SOURCES.values(), *(s for sources in ELOQUENT_SOURCES.values() for s in sources)]
)
def test_every_source_pattern_names_both_hemispheres(source):
    names = [anatomy_atlas.atlas_labels(source.atlas)[i] for i in anatomy_atlas.matching_indices(source)]
    assert any(re.search(r"(_L$|^Left_)", n) for n in names), names
    assert any(re.search(r"(_R$|^Right_)", n) for n in names), names


def test_recorded_matrix_keeps_handedness():
    matrix = recorded_mni_to_sri24()
    assert np.linalg.det(matrix[:3, :3]) > 0  # no mirror between MNI and SRI24 world
    assert np.allclose(np.linalg.svd(matrix[:3, :3])[1], 1, atol=0.2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "side"),
    [
        (Source("juelich", r"GM_Broca's_area_BA44_L"), "left"),
        (Source("juelich", r"GM_Broca's_area_BA44_R"), "right"),
        (Source("harvard_oxford", r"Left_Hippocampus"), "left"),
        (Source("aal", r"Cerebelum_Crus1_R"), "right"),
    ],
    ids=["broca-L", "broca-R", "hippocampus-L", "cerebellum-R"],
)
def test_atlas_sides_land_on_the_same_world_side(anatomy, source, side):
    x = _x(anatomy_atlas.source_mask(source, *anatomy_atlas.load_mni_atlas(source.atlas)))
    mid = float(anatomy["midline_x"])
    assert np.count_nonzero(x < mid if side == "left" else x > mid) > 0.95 * x.size
