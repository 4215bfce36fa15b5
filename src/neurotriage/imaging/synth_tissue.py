"""Per-case anatomy for the synthetic cohort: the SRI24 template, deformed, as tissue classes.

Everything works on a crop around the SRI24 brain (a third of the grid), and only voxels the
deformed brain can reach are resampled. The lobe labels used to place and check tumours stay
undeformed: the anatomy localiser reads the same undeformed atlas, so truth and localiser agree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage as ndi

from neurotriage.imaging import sri24
from neurotriage.imaging.synth_fields import bounding_box, smooth_field, smooth_fields

MARGIN = 9  # voxels around the brain: room for the size change and the smooth deformation
VENTRICLES, CORTEX, FALX = 1, 2, 4  # bit flags of the `code` volume, resampled nearest-neighbour
# Template intensities (SRI24 T1 template scaled to ~[0, 1]) that separate the tissue classes.
# Wide ramps keep the template's own gradations (partial volume) instead of flat plateaus.
WM_FROM, WM_FULL = 0.7, 0.9
CSF_FULL, CSF_TO = 0.2, (0.52, 0.7)  # the upper end varies per case: wider sulci with age
SULCI_GAIN = 3.0
VENTRICLE_MAX = 0.45  # template intensity below which the deep structures are ventricle CSF
DEEP_LABELS = ("thalamus", "internal_capsule", "corpus_callosum", "ventricles")


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, so it can key caches
class AtlasCrop:
    """The undeformed SRI24 atlas cropped around the brain, plus world-x geometry."""

    box: tuple[slice, slice, slice]
    template: np.ndarray  # float32
    lobes: np.ndarray  # uint8, sri24.LOBE_LABELS
    code: np.ndarray  # uint8 bit flags VENTRICLES | CORTEX | FALX
    world_x: np.ndarray  # float32 world (RAS) x of each voxel, mm
    midline_x: float  # world x of the mid-sagittal plane, mm
    reach: np.ndarray  # flat indices of the voxels the deformed brain may cover
    points: np.ndarray  # (3, n) float32 voxel coordinates of `reach`

    @property
    def shape(self) -> tuple[int, int, int]:
        """Crop shape."""
        return self.template.shape

    def side(self, hemisphere: str) -> np.ndarray:
        """Voxels of the crop in one hemisphere, by world x against the midline."""
        offset = self.world_x - self.midline_x
        return offset > 0 if hemisphere == "right" else offset < 0


@dataclass
class Anatomy:
    """One case's deformed anatomy on the crop grid."""

    template: np.ndarray  # float32 deformed template
    brain: np.ndarray  # bool skull-stripped mask
    wm: np.ndarray  # float32 tissue memberships, wm + gm + csf = 1
    gm: np.ndarray
    csf: np.ndarray
    code: np.ndarray  # uint8 deformed VENTRICLES | CORTEX | FALX flags

    def within(self, box: tuple[slice, ...]) -> Anatomy:
        """The same anatomy cut to a box (contiguous copies)."""
        return Anatomy(*(np.ascontiguousarray(getattr(self, f.name)[box]) for f in fields(self)))


def world_x_grid(shape: tuple[int, int, int], box: tuple[slice, ...], affine: np.ndarray) -> np.ndarray:
    """World (RAS) x in mm of every voxel of a crop, from the affine (not from array order)."""
    i, j, k = (np.arange(s.start, s.start + n, dtype=np.float32) for s, n in zip(box, shape, strict=True))
    row = affine[0].astype(np.float32)
    return row[0] * i[:, None, None] + row[1] * j[None, :, None] + row[2] * k[None, None, :] + row[3]


def brain_midline_x() -> float:
    """World x (mm) of the mid-sagittal plane: the mean x of the SRI24 brain mask."""
    i, j, k = np.nonzero(sri24.brain_mask())
    xyz = sri24.BRATS_AFFINE[:3, :3] @ np.stack([i.mean(), j.mean(), k.mean()]) + sri24.BRATS_AFFINE[:3, 3]
    return float(xyz[0])


def _falx(template: np.ndarray, world_x: np.ndarray, midline_x: float, ventricles: np.ndarray) -> np.ndarray:
    """The falx: a 1-2 mm midline sheet in the interhemispheric fissure (dark in the template)."""
    near_mid = np.abs(world_x - midline_x) < 1.0
    fissure = ndi.grey_opening(template, size=(1, 5, 5)) < 0.62  # sulcal dark that is long along y, z
    return near_mid & fissure & ~ndi.binary_dilation(ventricles, iterations=4) & (template > 0)


def _deepen_sulci(template: np.ndarray) -> np.ndarray:
    """Darken narrow valleys of the template: an average brain has washed-out sulci."""
    valleys = np.maximum(ndi.gaussian_filter(template, 1.5) - template, 0)
    # Keep brain voxels above zero so `template > 0` stays the brain mask.
    return np.where(template > 0, np.maximum(template - SULCI_GAIN * valleys, 0.01), 0).astype(np.float32)


def _ventricles(template: np.ndarray, lobes: np.ndarray) -> np.ndarray:
    """Dark voxels in and around the deep structures: the ventricles.

    The atlas ventricle label loses voxels to higher-priority deep labels (thalamus, corpus
    callosum...), so the dark template inside all of them, slightly grown, is used instead. The
    template is 0 in the middle of the ventricles, so 0 counts as ventricle there too.
    """
    deep = np.isin(lobes, [sri24.LOBE_LABELS[k] for k in DEEP_LABELS])
    return ndi.binary_dilation(deep, iterations=2) & (template < VENTRICLE_MAX)


def _clear_ventricles(template: np.ndarray, ventricles: np.ndarray) -> np.ndarray:
    """Make the ventricles CSF-dark: averaging left a grey partial-volume band inside them."""
    return np.where(ventricles, np.minimum(template, 0.25) * 0.5 + 0.01, template).astype(np.float32)


@functools.lru_cache(maxsize=1)
def atlas_crop() -> AtlasCrop:
    """The atlas cropped around the brain (computed once per process)."""
    atlas = sri24.template_and_masks()
    brain = atlas["template"] > 0
    box = bounding_box(brain, MARGIN)
    lobes = atlas["lobes"][box]
    raw = atlas["template"][box].astype(np.float32)
    ventricles = _ventricles(raw, lobes)
    template = _clear_ventricles(_deepen_sulci(raw), ventricles)
    world_x = world_x_grid(template.shape, box, sri24.BRATS_AFFINE)
    midline = brain_midline_x()
    code = (
        ventricles * np.uint8(VENTRICLES)
        | atlas["cortex"][box] * np.uint8(CORTEX)
        | _falx(template, world_x, midline, ventricles) * np.uint8(FALX)
    ).astype(np.uint8)
    reach = np.flatnonzero(ndi.binary_dilation(brain[box], iterations=MARGIN - 1))
    points = np.stack(np.unravel_index(reach, template.shape)).astype(np.float32)
    return AtlasCrop(box, template, lobes, code, world_x, midline, reach, points)


@dataclass(frozen=True)
class Push:
    """A tumour's mass effect: tissue pushed radially away from `centre` (crop voxels)."""

    centre: np.ndarray
    radius: float  # mm
    amount: float  # mm at the tumour's edge


def mass_effect(points: np.ndarray, push: Push) -> np.ndarray:
    """Radial displacement (3, n) in voxels at `points` (3, n)."""
    delta = points - push.centre.reshape(3, 1).astype(np.float32)
    r = np.sqrt((delta**2).sum(axis=0)) + np.float32(1e-3)
    # Linear inside the tumour (magnification), Gaussian fall-off outside; slope < 1, so no folding.
    outside = np.maximum(r - push.radius, 0) ** 2 / (2 * (1.5 * push.radius) ** 2)
    magnitude = push.amount * np.minimum(r / push.radius, 1.0) * np.exp(-outside)
    return delta * (magnitude / r)


def deformation(rng: np.random.Generator, crop: AtlasCrop, pushes: list[Push]) -> np.ndarray:
    """Where each reachable output voxel samples the atlas: (3, n) voxel coordinates.

    A per-axis size change about the brain centre, a smooth random warp (a few mm), and the
    tumours' mass effect.
    """
    points = crop.points
    centre = points.mean(axis=1, keepdims=True)
    scale = rng.uniform(0.94, 1.06, size=(3, 1)).astype(np.float32)
    warp = smooth_fields(rng, crop.shape, spacing=28.0, count=3).reshape(3, -1)[:, crop.reach]
    warp *= np.float32(rng.uniform(1.0, 2.5))
    for push in pushes:
        warp += mass_effect(points, push)
    # Pull sampling: output voxel x shows atlas point centre + (x - centre) / scale - warp(x).
    return centre + (points - centre) / scale - warp


def _linear(volume: np.ndarray, coords: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Trilinear sampling of `volume` at `coords` for the reachable voxels; zero elsewhere."""
    out = np.zeros(volume.shape, volume.dtype)
    values = ndi.map_coordinates(volume, coords, order=1, mode="constant", cval=0, prefilter=False)
    out.reshape(-1)[reach] = values
    return out


def _nearest(volume: np.ndarray, coords: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Nearest-neighbour sampling of a label volume; a plain gather is 3x faster than map_coordinates."""
    idx = [np.clip(np.rint(c), 0, n - 1).astype(np.intp) for c, n in zip(coords, volume.shape, strict=True)]
    out = np.zeros(volume.shape, volume.dtype)
    out.reshape(-1)[reach] = volume[tuple(idx)]
    return out


def skull_strip(rng: np.random.Generator, template: np.ndarray) -> np.ndarray:
    """An irregular brain mask, as a stripping tool leaves it: edges wander by a millimetre or two."""
    jitter = smooth_field(rng, template.shape, 5.0) * np.float32(rng.uniform(0.05, 0.15))
    soft = ndi.gaussian_filter((template > 0).astype(np.float32), 1.0, truncate=2.0)
    # Only near the edge: jitter far from the brain would leave islands in the background.
    return (soft + jitter > 0.35) & (soft > 0.02)


def tissue_classes(rng: np.random.Generator, template: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WM, GM and CSF memberships from template intensity, with jittered borders."""
    sharp = template + smooth_field(rng, template.shape, 3.8) * np.float32(0.025)
    wm = np.clip((sharp - WM_FROM) / (WM_FULL - WM_FROM), 0, 1)
    csf_to = rng.uniform(*CSF_TO)
    csf = np.clip((csf_to - sharp) / (csf_to - CSF_FULL), 0, 1)
    return wm, 1 - wm - csf, csf


def build_anatomy(rng: np.random.Generator, crop: AtlasCrop, pushes: list[Push]) -> Anatomy:
    """Deform the atlas for one case and derive its tissue classes and brain mask."""
    coords = deformation(rng, crop, pushes)
    template = _linear(crop.template, coords, crop.reach)
    code = _nearest(crop.code, coords, crop.reach)
    brain = skull_strip(rng, template)
    wm, gm, csf = tissue_classes(rng, template)
    return Anatomy(template, brain, wm, gm, csf, code)
