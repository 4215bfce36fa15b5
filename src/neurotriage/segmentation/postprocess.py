"""Clean-up after the network: drop specks too small to be a lesion, trust only enough enhancement,
and finish the enhancing ring the way an annotator would.

Also the default for averaging the network over flips (test-time augmentation), kept here beside
the other inference defaults. A model saves the settings it was tuned with in its config
(`ModelConfig.postprocess` and `.tta`); these defaults are what a model saved without them gets.

The steps, in order:
- whole-tumour components below a volume are dropped (the usual BraTS post-processing): scattered
  false positives on bright cortex, vessels or the posterior fossa are small, and they mislead the
  localisation ("crosses the midline");
- a tiny total of enhancing tumour becomes non-enhancing core: a few enhancing voxels in a
  non-enhancing tumour cost the whole ET score, and the tumour core is the same either way;
- in a tumour that enhances, a non-enhancing core component that nowhere comes near the
  enhancement becomes oedema. The core of an enhancing tumour is the enhancement and what it
  encloses (BraTS 2023 calls the rest, oedema and infiltrated tissue alike, surrounding
  non-enhancing FLAIR hyperintensity); necrosis touches its ring however large it is, so this
  step cannot erase it.
Given the T1ce image, three more steps finish a ring the network traced only in part:
- the enhancement grows along connected tissue at least as bright on T1ce as most of what the
  network called enhancing (a few mm at most, never fainter than a floor above normal brain);
- non-enhancing core that the finished ring neither touches nor encloses, and that is not joined
  to core it encloses, becomes oedema (this catches core that touches the ring from outside,
  which the component-wise step keeps);
- what the core of an enhancing tumour encloses, on all sides or through gaps in nearly every
  direction, becomes necrotic core.
How the thresholds were chosen and what they change is in MODEL_CARD.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage as ndi

from neurotriage.errors import UserError
from neurotriage.imaging.labels import EDEMA, ENHANCING, NECROTIC_CORE

CUBE = np.ones((3, 3, 3), bool)  # 26-connectivity
DEFAULT_MIN_COMPONENT_ML = 0.5
DEFAULT_MIN_ENHANCING_ML = 1.0
# Non-enhancing core separated from enhancement by a gap no wider than this touches it (slack for a ring
# traced in patches).
DEFAULT_CORE_CONTACT_MM = 2.0
DEFAULT_RING_GROWTH_MM = 12.0
DEFAULT_ENCLOSED_CORE_MM = 20.0
GROWTH_PERCENTILE = 10  # grown tissue is at least as T1ce-bright as 90 % of the predicted enhancement
GROWTH_FLOOR = 1.3  # ... and at least this many times the median T1ce of the brain away from the tumour
NORMAL_MARGIN_MM = 5.0  # "away from the tumour"
NORMAL_MIN_SHARE = 0.2  # of the brain, for the box-based estimate of normal brain
GROWTH_SEED_ML = 0.1  # enhancing pieces (26-connected) at least this large seed the growth
ENCLOSED_DIRECTIONS = 22  # of the 26 neighbour directions, how many must meet the core: gaps allowed
ENCLOSURE_ROUNDS = 4  # fills a necrosis several reaches across: each round reaches about one more
# Flip averaging: 4 passes instead of 1, a few seconds more per case on CPU.
DEFAULT_TTA = True


def drop_small_components(labels: np.ndarray, spacing: tuple[float, ...], min_ml: float) -> np.ndarray:
    """Labels with every whole-tumour component (26-connected) under `min_ml` millilitres set to background."""
    if min_ml <= 0 or not labels.any():
        return labels
    components, count = ndi.label(labels > 0, structure=CUBE)
    sizes = np.bincount(components.ravel(), minlength=count + 1) * _voxel_ml(spacing)
    keep = sizes >= min_ml
    keep[0] = False
    return np.where(keep[components], labels, 0).astype(labels.dtype)


def relabel_small_enhancement(labels: np.ndarray, spacing: tuple[float, ...], min_ml: float) -> np.ndarray:
    """Labels with all enhancing tumour turned into non-enhancing core when its total is under `min_ml`."""
    enhancing = labels == ENHANCING
    if not enhancing.any() or enhancing.sum() * _voxel_ml(spacing) >= min_ml:
        return labels
    return np.where(enhancing, NECROTIC_CORE, labels).astype(labels.dtype)


def relabel_detached_core(labels: np.ndarray, spacing: tuple[float, ...], contact_mm: float) -> np.ndarray:
    """Labels with each non-enhancing core component (26-connected) of an enhancing tumour turned into
    oedema when a gap of more than `contact_mm` separates it from all enhancement.

    A tumour is a 26-connected whole-tumour component; one without enhancement keeps its core."""
    if contact_mm <= 0 or not (labels == ENHANCING).any():
        return labels
    # Core and enhancement both lie in the tumour's bounding box, so distances there are exact and cheap.
    box = _box_around(labels > 0, 0.0, spacing)
    local = labels[box]
    components, count = ndi.label((local == NECROTIC_CORE) & _enhancing_tumours(local), structure=CUBE)
    if count == 0:
        return labels
    # Centre-to-centre distance: voxels that touch are one spacing apart, so the gap is one spacing less.
    distance = ndi.distance_transform_edt(local != ENHANCING, sampling=spacing)
    gap = np.asarray(ndi.minimum(distance, components, np.arange(1, count + 1))) - max(spacing)
    detached = np.concatenate([[False], gap > contact_mm])
    out = labels.copy()
    out[box] = np.where(detached[components], EDEMA, local)
    return out


def grow_enhancement(
    labels: np.ndarray, t1ce: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], reach_mm: float
) -> np.ndarray:
    """Labels with the enhancement extended over T1ce-bright tissue connected to it, up to `reach_mm` away."""
    enhancing = labels == ENHANCING
    if reach_mm <= 0 or not enhancing.any():
        return labels
    parts, count = ndi.label(enhancing, structure=CUBE)
    # Only what joins a real piece of ring grows: from specks the size of a vessel it would creep into
    # bright neighbours such as the choroid plexus.
    seeded = (np.bincount(parts.ravel(), minlength=count + 1) * _voxel_ml(spacing) >= GROWTH_SEED_ML)[parts] & enhancing
    if not seeded.any():
        return labels
    brightest = float(np.percentile(t1ce[enhancing], GROWTH_PERCENTILE))
    threshold = max(brightest, _growth_floor(labels, t1ce, brain, spacing))
    # Growth stays within reach of the enhancement: its box, widened by the reach, holds all of it.
    box = _box_around(enhancing, reach_mm, spacing)
    seeds = seeded[box]
    near = ndi.distance_transform_edt(~enhancing[box], sampling=spacing) <= reach_mm
    bright = (near & brain[box] & (t1ce[box] >= threshold)) | enhancing[box]
    grown = _pieces_holding(bright, seeds) & ~enhancing[box]
    out = labels.copy()
    out[box][grown] = ENHANCING
    return out


def _growth_floor(labels: np.ndarray, t1ce: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...]) -> float:
    """GROWTH_FLOOR times the median T1ce of the brain outside the tumour's box widened by NORMAL_MARGIN_MM
    (of the brain outside the tumour, when lesions far apart leave too little outside their box)."""
    normal = brain.copy()
    normal[_box_around(labels > 0, NORMAL_MARGIN_MM, spacing)] = False
    if normal.sum() < NORMAL_MIN_SHARE * brain.sum():
        normal = brain & (labels == 0)
    return GROWTH_FLOOR * float(np.median(t1ce[normal])) if normal.any() else 0.0


def _box_around(mask: np.ndarray, mm: float, spacing: tuple[float, ...]) -> tuple[slice, ...]:
    """The bounding box of a non-empty mask, widened by `mm` on every side (clipped to the array)."""
    box = ndi.find_objects(mask.astype(np.uint8))[0]
    pads = [int(np.ceil(mm / s)) + 1 for s in spacing]
    return tuple(slice(max(b.start - p, 0), min(b.stop + p, n)) for b, p, n in zip(box, pads, mask.shape, strict=True))


def fill_enclosed_core(
    labels: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], reach_mm: float
) -> np.ndarray:
    """Labels with what the core of an enhancing tumour encloses turned into necrotic core: a closed
    cavity, and through gaps what meets it in ENCLOSED_DIRECTIONS of the 26 directions within `reach_mm`."""
    if reach_mm <= 0 or not (labels == ENHANCING).any():
        return labels
    core = ((labels == NECROTIC_CORE) | (labels == ENHANCING)) & _enhancing_tumours(labels)
    box = _box_around(core, 0.0, spacing)
    wall = core[box]
    inside = _enclosed(wall, ~wall & brain[box], spacing, reach_mm)
    out = labels.copy()
    out[box][inside] = NECROTIC_CORE
    return out


def relabel_unenclosed_core(
    labels: np.ndarray, brain: np.ndarray, spacing: tuple[float, ...], contact_mm: float, reach_mm: float
) -> np.ndarray:
    """Labels with the non-enhancing core of an enhancing tumour turned into oedema where it lies more than
    `contact_mm` from the enhancement, is not enclosed by it (as `fill_enclosed_core` encloses), and is
    not joined to core that is: necrosis under an enhancing cap that covers only part of it stays."""
    if contact_mm <= 0 or reach_mm <= 0:
        return labels
    core = (labels == NECROTIC_CORE) & _enhancing_tumours(labels)
    if not core.any():
        return labels
    enhancing = labels == ENHANCING
    box = _box_around(core | enhancing, 0.0, spacing)
    wall, local = enhancing[box], core[box]
    inside = _enclosed(wall, ~wall & brain[box], spacing, reach_mm)
    # As in relabel_detached_core, voxels that touch are one spacing apart.
    near = ndi.distance_transform_edt(~wall, sampling=spacing) <= contact_mm + max(spacing)
    anchored = _pieces_holding(local, inside)
    out = labels.copy()
    out[box][local & ~inside & ~near & ~anchored] = EDEMA
    return out


def _enclosed(wall: np.ndarray, open_: np.ndarray, spacing: tuple[float, ...], reach_mm: float) -> np.ndarray:
    """The open voxels that `wall` encloses, joined to it: closed cavities, and through gaps what meets the
    wall (or what is already enclosed) in ENCLOSED_DIRECTIONS of the 26 directions within `reach_mm`."""
    # At least one step each way, so a reach shorter than a diagonal step does not switch enclosure off.
    walks = [(step, max(1, int(reach_mm / float(np.linalg.norm(step * spacing)) + 1e-6))) for step in _directions()]
    # A closed wall encloses its inside however wide; the rounds below handle walls with gaps.
    filled = wall | (ndi.binary_fill_holes(wall) & open_)
    # Each round also counts what the last one filled, so a necrosis wider than the reach fills from
    # its middle outwards instead of only along the wall.
    for _ in range(ENCLOSURE_ROUNDS):
        met = np.zeros(wall.shape, np.uint8)
        for step, steps in walks:
            met += _meets(filled, step, steps)
        more = filled | ((met >= ENCLOSED_DIRECTIONS) & open_)
        if (more == filled).all():
            break
        filled = more
    # Only what joins the wall: a lone voxel a few mm off a lobulated core is not inside it.
    return _pieces_holding(filled, wall) & ~wall


def _directions() -> list[np.ndarray]:
    return [np.array(d) - 1 for d in np.ndindex(3, 3, 3) if d != (1, 1, 1)]


def _meets(mask: np.ndarray, step: np.ndarray, steps: int) -> np.ndarray:
    """Per voxel: does walking `step` at a time for up to `steps` steps hit the mask?"""
    padded = np.pad(mask, steps)
    hit = np.zeros(mask.shape, bool)
    for k in range(1, steps + 1):
        start = steps + k * step
        hit |= padded[tuple(slice(a, a + n) for a, n in zip(start, mask.shape, strict=True))]
    return hit


def _enhancing_tumours(labels: np.ndarray) -> np.ndarray:
    """Voxels of the whole-tumour components (26-connected) that hold enhancement."""
    return _pieces_holding(labels > 0, labels == ENHANCING)


def _pieces_holding(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The voxels of the mask's 26-connected pieces that hold at least one seed voxel."""
    pieces, _ = ndi.label(mask, structure=CUBE)
    return np.isin(pieces, np.unique(pieces[seeds & mask]))


def _voxel_ml(spacing: tuple[float, ...]) -> float:
    return float(np.prod(spacing)) / 1000.0


@dataclass(frozen=True)
class PostProcess:
    """The clean-up applied to a prediction; 0 turns a step off."""

    min_component_ml: float = DEFAULT_MIN_COMPONENT_ML
    min_enhancing_ml: float = DEFAULT_MIN_ENHANCING_ML
    core_contact_mm: float = DEFAULT_CORE_CONTACT_MM
    ring_growth_mm: float = DEFAULT_RING_GROWTH_MM
    enclosed_core_mm: float = DEFAULT_ENCLOSED_CORE_MM

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise UserError(f"{name.replace('_', ' ')} {value} must be 0 or more", field=name)

    def apply(self, labels: np.ndarray, spacing: tuple[float, ...], t1ce: np.ndarray | None = None) -> np.ndarray:
        """Drop small components first, so enhancement inside a dropped speck does not count; then
        judge the core against the enhancement that is left; then, given `t1ce` (the brain is where it
        is non-zero), finish the ring, keep only the core it encloses or touches, and fill what it encloses."""
        labels = drop_small_components(labels, spacing, self.min_component_ml)
        labels = relabel_small_enhancement(labels, spacing, self.min_enhancing_ml)
        labels = relabel_detached_core(labels, spacing, self.core_contact_mm)
        if t1ce is None:
            return labels
        brain = t1ce != 0
        labels = grow_enhancement(labels, t1ce, brain, spacing, self.ring_growth_mm)
        labels = relabel_unenclosed_core(labels, brain, spacing, self.core_contact_mm, self.enclosed_core_mm)
        return fill_enclosed_core(labels, brain, spacing, self.enclosed_core_mm)

    def to_dict(self) -> dict:
        """Plain data, for provenance and metrics files."""
        return asdict(self)


DEFAULT_POST = PostProcess()
