"""A plausibility gate before the network: refuse images that no MR scanner makes.

A few absurd voxels (3e38, 1e7), an image scaled by 1e33 or an all-negative one pass the loader's
checks (finite, not empty) and then turn the z-score normalisation into nonsense: the network
answers "no tumour", or a shrunken one, with full confidence. Every check names the file.
The thresholds are far from what real and synthetic BraTS scans give (MODEL_CARD.md).
"""

from __future__ import annotations

import numpy as np

from neurotriage.errors import UserError
from neurotriage.imaging.io import Case
from neurotriage.segmentation.preprocess import brain_mask

# MR magnitudes are stored as 16-bit integers or floats of that order; none reaches a million.
MAX_MAGNITUDE = 1e6
# The brightest voxel over the 99.9th percentile of the brain (real scans: at most 1.65).
MAX_OUTLIER_RATIO = 50.0
# Magnitude images are not negative; interpolation may leave a few voxels slightly below zero.
MAX_NEGATIVE_SHARE = 0.01
# Share of the grid that is brain (non-zero in some sequence); BraTS cases hold 17-19 %.
FOREGROUND_SHARE = (0.02, 0.6)


def _check_sequence(case: Case, name: str, brain: np.ndarray) -> None:
    path = case.files.images.get(name, case.files.folder)
    values = case.images[name][brain].astype(np.float64)
    if values.size == 0:
        return
    biggest = float(np.abs(values).max())
    if biggest > MAX_MAGNITUDE:
        raise UserError(f"{path}: values up to {biggest:.3g} are not MR magnitudes (at most {MAX_MAGNITUDE:g})")
    negative = float(np.mean(values < 0))
    if negative > MAX_NEGATIVE_SHARE:
        raise UserError(f"{path}: {100 * negative:.0f} % of the brain is negative; MR magnitude images are not")
    top = float(np.percentile(values, 99.9))
    if top > 0 and biggest / top > MAX_OUTLIER_RATIO:
        raise UserError(
            f"{path}: the brightest voxel ({biggest:.3g}) is {biggest / top:.0f}x the 99.9th percentile "
            f"({top:.3g}); a few corrupt voxels would distort the intensity scaling"
        )


def check_plausible(case: Case) -> None:
    """Refuse a case whose images no scanner would make; a one-line UserError names the file."""
    brain = brain_mask(case)
    share = float(brain.mean())
    low, high = FOREGROUND_SHARE
    if not low <= share <= high:
        raise UserError(
            f"{case.files.folder}: {100 * share:.1f} % of the grid is non-zero; a skull-stripped brain "
            f"fills {100 * low:.0f}-{100 * high:.0f} %"
        )
    for name in case.images:
        _check_sequence(case, name, brain)


def check_finite(array: np.ndarray, case: Case, what: str) -> None:
    """Refuse a non-finite network input or output, naming the case."""
    if not np.isfinite(array).all():
        raise UserError(f"{case.files.folder}: the {what} is not finite; the images cannot be segmented")
