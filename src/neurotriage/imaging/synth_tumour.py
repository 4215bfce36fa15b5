"""Synthetic gliomas: placement inside a lobe and hemisphere, and their compartments.

A lesion is an irregular, lobulated ball (a distance field perturbed by smooth noise) with a
necrotic centre, an enhancing rim, and oedema that reaches further into white matter than into
cortex and may sit off-centre, to one side of the core (or, when the plan gives a rim thickness,
surrounds the core as a rim of varying thickness). Lobe and hemisphere come from the
undeformed SRI24 lobe atlas and world x, the same reference the anatomy localiser uses, and each
lesion is checked to lie mostly in its lobe.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from neurotriage.imaging import sri24
from neurotriage.imaging.synth_fields import smooth_field
from neurotriage.imaging.synth_tissue import VENTRICLES, Anatomy, AtlasCrop

# Compartment codes of the painting, 0 outside any lesion. They are not segmentation labels:
# synth.py maps them to labels (solid non-enhancing tumour and necrosis both become the core label).
PAINT_NECROSIS, PAINT_EDEMA, PAINT_ENHANCING, PAINT_SOLID = 1, 2, 3, 4
MIN_INSIDE = 0.8  # fraction of whole tumour and of core that must lie in the planned lobe
DEPTH_STEP = 2  # voxels: the lobe depth maps are computed on a 2 mm grid
ATTEMPTS = 5
REACH_PER_DEPTH = 2.5  # oedema may reach this many times the region's depth: lesions follow the lobe
# Real oedema is often one-sided: its bulk can sit beside the core. Its centre moves off the core's
# by up to this fraction of its reach.
EDEMA_OFFSET = 0.35
EDEMA_BOX = 1.8  # the painting box's half-edge, in oedema reaches: room for the offset oedema
# A rim of oedema around the core (when a plan gives its thickness) varies around the core by up to
# this fraction of its mean, so it is thin on one side and wider on another, down to nothing in places.
RIM_VARIATION = 0.6


@dataclass
class LesionPlan:
    """Where a lesion goes and how it looks; sizes in mm (1 mm voxels)."""

    lobe: str
    hemisphere: str
    centre: np.ndarray  # crop voxel coordinates
    radius: float  # tumour core radius
    edema_ratio: float  # oedema reach / core radius
    enhancing: bool
    necrosis: float  # necrotic fraction of the core radius, 0 = solid
    push: float  # mass effect, mm
    rim_mm: float | None = None  # oedema as a rim this thick on average around the core (None: a ball)


def region(crop: AtlasCrop, lobe: str, hemisphere: str) -> np.ndarray:
    """Voxels of the crop in one lobe of one hemisphere (undeformed atlas, world x)."""
    return (crop.lobes == sri24.LOBE_LABELS[lobe]) & crop.side(hemisphere)


@functools.lru_cache(maxsize=16)
def _region_depth(crop: AtlasCrop, lobe: str, hemisphere: str) -> np.ndarray:
    """Distance (mm) from each voxel of a 2 mm grid to the edge of the lobe-hemisphere region."""
    step = (slice(None, None, DEPTH_STEP),) * 3
    return ndi.distance_transform_edt(region(crop, lobe, hemisphere)[step]).astype(np.float32) * DEPTH_STEP


def choose_centre(
    rng: np.random.Generator,
    crop: AtlasCrop,
    lobe: str,
    hemisphere: str,
    reach: float,
    avoid: tuple[tuple[np.ndarray, float], ...] = (),
) -> tuple[np.ndarray, float]:
    """A seed deep enough in the region for a lesion of `reach` mm; returns (centre, usable reach).

    Small regions (the insula) cap the reach. `avoid` holds (centre, distance) pairs to keep
    clear of, for the separate foci of a multifocal case.
    """
    depth = _region_depth(crop, lobe, hemisphere)
    ok = np.ones(depth.shape, bool)
    grid = np.indices(depth.shape, dtype=np.float32) * DEPTH_STEP
    for centre, distance in avoid:
        ok &= ((grid - centre.reshape(3, 1, 1, 1)) ** 2).sum(0) > distance**2
    deepest = float(depth[ok].max()) if ok.any() else 0.0
    reach = min(reach, REACH_PER_DEPTH * deepest)
    candidates = np.argwhere(ok & (depth >= min(0.7 * reach, 0.85 * deepest)) & (depth > 0))
    if not len(candidates):
        return np.zeros(3), 0.0
    # Gliomas grow mostly in white matter: prefer seeds where the template is white-matter bright.
    tmpl = crop.template[tuple((candidates * DEPTH_STEP).T)]
    weights = np.where(tmpl > 0.75, 3.0, 1.0)
    pick = candidates[rng.choice(len(candidates), p=weights / weights.sum())]
    return pick.astype(np.float64) * DEPTH_STEP + rng.uniform(0, DEPTH_STEP, 3), reach


def _box(centre: np.ndarray, half: int, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    lo = np.maximum(np.round(centre).astype(int) - half, 0)
    hi = np.minimum(np.round(centre).astype(int) + half + 1, shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _radial(rng: np.random.Generator, box: tuple[slice, ...], centre: np.ndarray) -> np.ndarray:
    """Distance from the centre under a random rotation and axis stretch (an irregular ellipsoid)."""
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    stretch = rng.uniform(0.75, 1.3, 3)
    axes = np.ogrid[box]
    delta = [(a - c).astype(np.float32) for a, c in zip(axes, centre, strict=True)]
    rotated = [sum(q[r, c] / stretch[r] * delta[c] for c in range(3)) for r in range(3)]
    return np.sqrt(sum(v**2 for v in rotated))


@dataclass
class Site:
    """The box a lesion is painted in and what it needs to know there; built once per lesion."""

    box: tuple[slice, ...]
    inside: np.ndarray  # the planned lobe-hemisphere region
    outside: np.ndarray  # mm outside that region (0 inside)
    allowed: np.ndarray  # brain tissue a tumour may occupy (not ventricles or CSF)
    wm: np.ndarray  # white-matter membership
    hemisphere: np.ndarray  # the planned side of the midline

    @classmethod
    def around(cls, plan: LesionPlan, crop: AtlasCrop, anatomy: Anatomy) -> Site:
        """The site around a planned lesion, large enough for its oedema."""
        box = _box(plan.centre, int(EDEMA_BOX * plan.radius * plan.edema_ratio + 5), crop.shape)
        inside = region(crop, plan.lobe, plan.hemisphere)[box]
        outside = ndi.distance_transform_edt(~inside).astype(np.float32) if inside.any() else np.zeros(inside.shape)
        allowed = anatomy.brain[box] & (anatomy.code[box] & VENTRICLES == 0) & (anatomy.csf[box] < 0.6)
        return cls(box, inside, outside, allowed, anatomy.wm[box], crop.side(plan.hemisphere)[box])


def _compartments(rng: np.random.Generator, plan: LesionPlan, site: Site, firm: float) -> tuple[np.ndarray, np.ndarray]:
    """Paint one lesion in its site: (compartment codes, oedema strength in [0, 1])."""
    shape = site.inside.shape
    r = _radial(rng, site.box, plan.centre)
    # Distance outside the planned region raises the shape fields: lesions respect lobe borders softly.
    outside = site.outside * np.float32(firm)
    lobular = smooth_field(rng, shape, max(6.0, 0.7 * plan.radius))
    fine = smooth_field(rng, shape, 3.0)
    s_core = r / plan.radius + 0.18 * lobular + 0.08 * fine + outside / plan.radius
    core = (s_core < 1) & site.allowed
    codes = np.zeros(shape, np.uint8)
    if plan.enhancing:
        codes[core] = PAINT_ENHANCING
        # The necrosis follows the lesion's lobulation, so the enhancing wall stays a wall.
        s_nec = s_core + 0.3 * smooth_field(rng, shape, max(5.0, 0.4 * plan.radius))
        # A rim of at least 2 mm stays enhancing however large the necrosis.
        necrotic = (s_nec < plan.necrosis) & ndi.binary_erosion(core, iterations=2)
        codes[necrotic] = PAINT_NECROSIS
    else:
        codes[core] = PAINT_SOLID
    if plan.rim_mm is not None:
        edema, strength = _rim(rng, plan, site, core)
        codes[edema] = PAINT_EDEMA
        return _connected_to_core(codes), strength
    reach = plan.radius * plan.edema_ratio
    r_edema = _radial(rng, site.box, _edema_centre(rng, plan.centre, reach))
    s_edema = r_edema / reach + 0.22 * smooth_field(rng, shape, 9.0) + 0.08 * fine + outside / reach
    # Oedema follows white matter: it reaches further in WM than in grey matter.
    limit = 0.45 + 0.7 * site.wm
    edema = (s_edema < limit) & site.allowed & site.hemisphere & ~core
    codes[edema] = PAINT_EDEMA
    # Full strength except a thin fading edge: real oedema is as FLAIR-bright as the core, or brighter.
    strength = np.where(edema, np.clip((limit - s_edema) / 0.2, 0, 1), 0).astype(np.float32)
    return _connected_to_core(codes), strength


def _rim(rng: np.random.Generator, plan: LesionPlan, site: Site, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Oedema as a halo of varying thickness around the core: (oedema mask, strength fading to its edge)."""
    distance = ndi.distance_transform_edt(~core).astype(np.float32)
    spread = np.float32(RIM_VARIATION) * smooth_field(rng, core.shape, max(6.0, 0.7 * plan.radius))
    rim = np.float32(plan.rim_mm) * np.clip(1 + spread, 0.1, 2.0)
    edema = (distance <= rim) & site.allowed & site.hemisphere & ~core
    strength = np.where(edema, np.clip((rim - distance) / np.maximum(0.5 * rim, 1), 0, 1), 0).astype(np.float32)
    return edema, strength


def _edema_centre(rng: np.random.Generator, centre: np.ndarray, reach: float) -> np.ndarray:
    """The oedema's centre: the core's, moved a random distance in a random direction."""
    direction = rng.standard_normal(3)
    return centre + direction / np.linalg.norm(direction) * rng.uniform(0, EDEMA_OFFSET) * reach


def _connected_to_core(codes: np.ndarray) -> np.ndarray:
    """Drop oedema and core islands not connected to the largest piece of tumour core."""
    labels, n = ndi.label(codes > 0)
    if n <= 1:
        return codes
    core_labels = labels[(codes > 0) & (codes != PAINT_EDEMA)]
    if not core_labels.size:
        return np.zeros_like(codes)
    keep = np.bincount(core_labels).argmax()
    return np.where(labels == keep, codes, 0).astype(np.uint8)


def _inside_fraction(codes: np.ndarray, inside: np.ndarray) -> float:
    """The smaller of the whole-tumour and core fractions lying inside the region."""
    wt, core = codes > 0, (codes > 0) & (codes != PAINT_EDEMA)
    if not core.any():
        return 0.0
    return min(float((wt & inside).sum() / wt.sum()), float((core & inside).sum() / core.sum()))


def paint_lesion(
    rng: np.random.Generator,
    plan: LesionPlan,
    crop: AtlasCrop,
    anatomy: Anatomy,
    codes: np.ndarray,
    strength: np.ndarray,
    max_voxels: int | None = None,
) -> np.ndarray | None:
    """Paint a lesion into the crop-wide `codes` / `strength`; returns its centroid (crop voxels).

    None (and nothing painted) if it would touch another lesion, came out empty or larger than
    `max_voxels`. Retries with
    a firmer lobe border and a smaller size until it lies mostly in its lobe; a last resort cuts
    it at the lobe border.
    """
    site, firm = Site.around(plan, crop, anatomy), 1.0
    for attempt in range(ATTEMPTS):
        if attempt:
            firm, plan.radius = firm * 2, plan.radius * 0.85
        local, local_strength = _compartments(rng, plan, site, firm)
        if _inside_fraction(local, site.inside) >= MIN_INSIDE:
            break
    else:
        local[~site.inside] = 0
        local = _connected_to_core(local)
    box = site.box
    size = int((local > 0).sum())
    if not size or (max_voxels is not None and size > max_voxels):
        return None
    if (ndi.binary_dilation(local > 0, iterations=2) & (codes[box] > 0)).any():
        return None
    codes[box] = np.where(local > 0, local, codes[box])
    strength[box] = np.maximum(strength[box], local_strength * (local == PAINT_EDEMA))
    return np.argwhere(local > 0).mean(axis=0) + [s.start for s in box]


def lesion_truth(plan: LesionPlan, crop: AtlasCrop, centroid: np.ndarray, affine: np.ndarray) -> dict:
    """truth.json entry for one painted lesion: lobe, hemisphere, world centroid in mm."""
    voxel = centroid + [s.start for s in crop.box]
    centroid = affine[:3, :3] @ voxel + affine[:3, 3]
    return {"lobe": plan.lobe, "hemisphere": plan.hemisphere, "centroid_mm": [round(float(v), 1) for v in centroid]}
