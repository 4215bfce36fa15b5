"""Oedema as annotators see it (generator v9): a gradual fall-off, faint extensions, a label by visibility.

Real peritumoural oedema fades into normal white matter over several millimetres, and BraTS
annotators include its faint edge. So the oedema's colour is blended in by a field that is full in
the painted bulk (as in v5) and falls off beyond it with a per-case decay length, and a faint
tongue of oedema may run several slices above or below the main mass. The oedema label is then
not the painted region but the annotation rule: the voxels where the oedema's FLAIR excess is
visible (see `visible_oedema`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from neurotriage.imaging.synth_fields import bounding_box, smooth_field
from neurotriage.imaging.synth_slices import axial_axis
from neurotriage.imaging.synth_tissue import VENTRICLES, Anatomy, AtlasCrop
from neurotriage.imaging.synth_tumour import PAINT_EDEMA, LesionPlan

# The fall-off beyond the painted bulk: the bulk's edge weight (the painted edge's, 0.6 of the
# oedema's contrast) times exp(-(d - 1) / decay), d in mm from the lesion. The decay varies along
# the edge by up to exp(+-FALLOFF_SPREAD) so the faint edge reaches out in fingers.
FALLOFF_MM = (1.0, 2.5)
FALLOFF_SPREAD = 0.25
FALLOFF_EDGE = 0.6
FALLOFF_REACH = 24  # voxels: where even the slowest fall-off is below FIELD_FLOOR
FIELD_FLOOR = 0.01  # blend weights below this are left out
# Vasogenic oedema spreads along white matter and spares the cortex: the fall-off and the tongues are
# blended into white matter fully, into grey matter at this share, and not into CSF.
CORTEX_SHARE = 0.2
# The annotation rule: oedema is labelled where its FLAIR excess over the normal tissue beneath is at
# least this fraction of white matter's FLAIR (drawn per case: annotators differ), i.e. where FLAIR
# reaches about 1.05-1.15x white matter.
VISIBLE_EXCESS = (0.05, 0.15)
FAINT_EXCESS = 0.01  # excess still counted as blended-in oedema (truth.json), far below any annotator's
# A faint tongue of oedema above and/or below the main mass (along the inferior-superior axis): how
# often, how far (in oedema reaches, from the lesion's centre), how wide and how bright (of the
# oedema's contrast).
EXTENSION_PROB = 0.4
EXTENSION_LENGTH = (0.6, 1.3)
EXTENSION_WIDTH = (0.3, 0.6)
EXTENSION_LEVEL = (0.15, 0.5)


@dataclass
class OedemaField:
    """The oedema's blend weight in a box of the render grid: full in its bulk, fading beyond."""

    box: tuple[slice, ...]
    weight: np.ndarray  # float32 in [0, 1], 0 on core compartments and where nothing is blended


def extension(rng: np.random.Generator, plan: LesionPlan, crop: AtlasCrop, anatomy: Anatomy) -> np.ndarray | None:
    """A faint tongue of oedema running above and/or below a lesion, on the crop grid (None: not this case)."""
    if rng.random() >= EXTENSION_PROB:
        return None
    reach = plan.radius * plan.edema_ratio
    axis = axial_axis()
    directions = ((-1,), (1,), (-1, 1))[int(rng.choice(3, p=(0.4, 0.4, 0.2)))]
    level = np.float32(rng.uniform(*EXTENSION_LEVEL))
    allowed = anatomy.brain & (anatomy.code & VENTRICLES == 0) & (anatomy.csf < 0.6) & crop.side(plan.hemisphere)
    field = np.zeros(crop.shape, np.float32)
    for sign in directions:
        length, width = reach * rng.uniform(*EXTENSION_LENGTH), reach * rng.uniform(*EXTENSION_WIDTH)
        along = 0.5 * length + 0.3 * reach  # semi-axis: from inside the main mass to `length` beyond its centre
        centre = plan.centre.copy()
        centre[axis] += sign * 0.5 * length
        half = np.full(3, width)
        half[axis] = along
        box = _box(centre, half + 3, crop.shape)
        axes = np.ogrid[box]
        radial = np.sqrt(sum(((a - c) / h).astype(np.float32) ** 2 for a, c, h in zip(axes, centre, half, strict=True)))
        radial += np.float32(0.2) * smooth_field(rng, radial.shape, max(4.0, 0.5 * width))
        # Like the bulk, it reaches further in white matter than in grey matter.
        tongue = np.clip((1 - radial) / 0.35, 0, 1) * np.clip(0.4 + 0.8 * anatomy.wm[box], 0, 1) * allowed[box]
        field[box] = np.maximum(field[box], level * tongue)
    return field


def _box(centre: np.ndarray, half: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    lo = np.maximum(np.floor(centre - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre + half).astype(int) + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def oedema_tissue(anatomy: Anatomy) -> np.ndarray:
    """Where the oedema's fall-off may reach, 0-1 per voxel: white matter, a little of the cortex, no CSF."""
    return anatomy.wm + np.float32(CORTEX_SHARE) * anatomy.gm


def oedema_field(
    rng: np.random.Generator, codes: np.ndarray, strength: np.ndarray, tongue: np.ndarray | None, tissue: np.ndarray
) -> OedemaField | None:
    """The oedema's blend weight: the painted bulk, its fall-off, and any tongue; the last two scaled by
    `tissue` (`oedema_tissue`)."""
    lesion = codes > 0
    if not lesion.any():
        return None
    box = bounding_box(lesion if tongue is None else lesion | (tongue > 0), FALLOFF_REACH)
    local, inside = codes[box], lesion[box]
    distance = ndi.distance_transform_edt(~inside).astype(np.float32)  # 1 = touching a lesion voxel
    spread = np.exp(np.float32(FALLOFF_SPREAD) * smooth_field(rng, local.shape, 8.0))
    decay = np.float32(rng.uniform(*FALLOFF_MM)) * spread
    weight = np.float32(FALLOFF_EDGE) * np.exp((1 - distance) / decay) * tissue[box]
    if tongue is not None:
        weight = np.maximum(weight, tongue[box] * tissue[box])
    bulk = local == PAINT_EDEMA
    weight[bulk] = np.maximum(weight[bulk], 0.6 + 0.4 * strength[box][bulk])
    weight[inside & ~bulk] = 0  # core compartments keep their own colour
    weight[weight < FIELD_FLOOR] = 0
    return OedemaField(box, weight.astype(np.float32))


def visible_oedema(excess: np.ndarray, threshold: float, core: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """The oedema label by the annotation rule: FLAIR excess (in white-matter units) at least `threshold`,
    not core, in the brain, and connected (26-neighbours) to a core through such voxels."""
    visible = (excess >= threshold) & brain & ~core
    if not core.any():
        return np.zeros_like(visible)
    components, _ = ndi.label(visible | core, structure=np.ones((3, 3, 3), bool))
    touching = np.unique(components[core])
    return visible & np.isin(components, touching[touching > 0])
