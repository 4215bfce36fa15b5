"""A plausibility hint for the reviewer: FLAIR-bright tissue that touches the outline but was left out.

Real oedema fades into white matter, and the model's whole-tumour edge tends to stop early. The
case itself says how much bright tissue lies just outside: FLAIR is scored against the brain away
from the tumour (median and MAD, so the tumour does not inflate the spread), and the voxels above
HYPER_Z that are not tumour, lie within BAND_MM of the outline and connect to it are counted. The
hint prompts a review; it never changes the labels.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel
from scipy import ndimage

HYPER_Z = 2.0  # robust z-score of FLAIR against the brain away from the tumour
BAND_MM = 10.0  # how far outside the outline bright tissue still counts as its edge
AWAY_MM = 15.0  # the reference brain starts this far from the tumour
SHOW_ML = 1.0  # smaller amounts are noise, not a prompt
MAD_TO_SD = 1.4826


class ReviewHint(BaseModel):
    """Something in the case a reviewer should look at, with the amount measured."""

    kind: str
    ml: float
    text: str


def _distance_mm(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Distance of every voxel to `mask`, in mm."""
    return ndimage.distance_transform_edt(~mask, sampling=spacing)


def _robust_z(flair: np.ndarray, reference: np.ndarray) -> np.ndarray:
    values = flair[reference]
    median = float(np.median(values))
    spread = MAD_TO_SD * float(np.median(np.abs(values - median))) or 1.0
    return (flair - median) / spread


def flair_beyond_outline(flair: np.ndarray, seg: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """ml of FLAIR-hyperintense tissue outside the whole tumour, touching it and within BAND_MM of it."""
    tumour = seg > 0
    brain = flair > 0
    if not tumour.any():
        return 0.0
    distance = _distance_mm(tumour, spacing)
    reference = brain & (distance > AWAY_MM)
    if reference.sum() < 1000:
        return 0.0
    bright = brain & ~tumour & (distance <= BAND_MM) & (_robust_z(flair, reference) > HYPER_Z)
    pieces, _ = ndimage.label(bright | tumour)
    attached = np.isin(pieces, np.unique(pieces[tumour]))
    return float(np.count_nonzero(bright & attached)) * float(np.prod(spacing)) / 1000.0


def review_hints(flair: np.ndarray | None, seg: np.ndarray | None, affine: np.ndarray) -> list[ReviewHint]:
    """The hints this case earns (none without a FLAIR, a segmentation or enough bright tissue)."""
    if flair is None or seg is None:
        return []
    spacing = tuple(float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0)))
    ml = flair_beyond_outline(flair, seg, spacing)
    if ml < SHOW_ML:
        return []
    text = (
        f"{ml:.1f} ml of FLAIR-hyperintense tissue touches the outline but is not included "
        f"(within {BAND_MM:g} mm, FLAIR over {HYPER_Z:g} robust SD above the rest of the brain): "
        "check whether the oedema edge reaches further."
    )
    return [ReviewHint(kind="flair_beyond_outline", ml=round(ml, 1), text=text)]
