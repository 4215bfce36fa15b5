"""Voxel-wise uncertainty, and how much uncertain tissue lies at each tumour compartment.

The map is the entropy of the probabilities a segmentation was decided on (averaged over flips and
ensemble members), taken over the four internal labels and normalised by log 4: 0 where one label is
certain, 1 where all four are equally likely. Sigmoid regions are read as the class distribution
their nesting implies (segmentation.probabilities), so the number means the same for every model.
It is kept as uint8 (entropy x 255): a 240x240x155 map is 9 MB in memory.

Uncertain tissue is where the entropy is at least UNCERTAIN_AT, i.e. at least as unsure as an even
split between two labels (one bit). For each compartment the report counts the uncertain tissue
inside it or within NEAR_MM of it (the margin the report also uses for eloquent areas), so a reviewer
knows how much of the outline to check; what lies farther away counts only in the total.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from scipy import ndimage as ndi

from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.labels import TUMOUR_REGIONS, VOLUME_LABELS
from neurotriage.imaging.naming import split_name
from neurotriage.segmentation.probabilities import Probabilities

LEVELS = 255  # uint8 steps of the stored map: value / LEVELS is the normalised entropy
UNCERTAIN_AT = 0.5
NEAR_MM = 5.0
# The compartments of locate's volumes_ml, by the internal labels each holds.
COMPARTMENTS = {
    "whole_tumour": TUMOUR_REGIONS["WT"],
    "tumour_core": TUMOUR_REGIONS["TC"],
    **{key: (label,) for key, label in VOLUME_LABELS.items()},
}
MEASURE = (
    "normalised entropy of the averaged probabilities over the four labels (0 certain, 1 all equally likely); "
    "uncertain at or above the threshold, counted inside each compartment or within near_mm of it"
)


def entropy(probabilities: Probabilities) -> np.ndarray:
    """Per-voxel entropy over the four labels divided by log 4 (float32, 0 to 1)."""
    total = np.zeros(probabilities.values.shape[1:], np.float32)
    for p in probabilities.classes():
        total -= p * np.log(np.maximum(p, np.float32(1e-12)))
    return np.clip(total / np.float32(math.log(4)), 0, 1)


def uncertainty_map(probabilities: Probabilities) -> np.ndarray:
    """The entropy quantised to uint8 (entropy x LEVELS, rounded)."""
    return np.rint(entropy(probabilities) * LEVELS).astype(np.uint8)


def uncertainty_path(segmentation: Path) -> Path:
    """Where the uncertainty map of a segmentation file goes: beside it, '<ID>_uncertainty.nii.gz' for a
    BraTS-named '<ID>_seg.nii.gz' (in its naming), else the file's name with '_uncertainty' added."""
    parsed = split_name(segmentation.name)
    if parsed is not None and parsed[2] == "seg":
        naming, case_id, _ = parsed
        return segmentation.with_name(naming.filename(case_id, "uncertainty"))
    ext = ".nii.gz" if segmentation.name.endswith(".nii.gz") else segmentation.suffix
    return segmentation.with_name(f"{segmentation.name.removesuffix(ext)}_uncertainty{ext}")


def write_uncertainty(uncertainty: np.ndarray, affine: np.ndarray, path: Path, header=None) -> Path:
    """Write a uint8 map (atomic) that NIfTI readers see as the normalised entropy, 0 to 1."""
    return write_nifti(uncertainty, affine, path, header=header, scale=1.0 / LEVELS)


class UncertainTissue(BaseModel):
    """Millilitres of uncertain tissue at each compartment (the keys of locate's volumes_ml) and in all."""

    measure: str = MEASURE
    threshold: float = UNCERTAIN_AT
    near_mm: float = NEAR_MM
    ml: dict[str, float]
    total_ml: float


def uncertain_tissue(uncertainty: np.ndarray, labels: np.ndarray, spacing: tuple[float, ...]) -> UncertainTissue:
    """The uncertain tissue of a uint8 map at each compartment of `labels` (internal), and in all."""
    uncertain = uncertainty >= math.ceil(UNCERTAIN_AT * LEVELS)  # the steps of entropies at or above it (+-half a step)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    ml = {key: _near(uncertain, np.isin(labels, held), spacing) * voxel_ml for key, held in COMPARTMENTS.items()}
    return UncertainTissue(
        ml={key: round(value, 3) for key, value in ml.items()},
        total_ml=round(float(np.count_nonzero(uncertain)) * voxel_ml, 3),
    )


def _near(uncertain: np.ndarray, compartment: np.ndarray, spacing: tuple[float, ...]) -> int:
    """Voxels of `uncertain` inside `compartment` or within NEAR_MM of it."""
    if not compartment.any():
        return 0
    # Everything within reach lies in the compartment's bounding box widened by the reach.
    found = ndi.find_objects(compartment.astype(np.uint8))[0]
    pads = [int(math.ceil(NEAR_MM / s)) for s in spacing]
    box = tuple(slice(max(b.start - p, 0), b.stop + p) for b, p in zip(found, pads, strict=True))
    distance = ndi.distance_transform_edt(~compartment[box], sampling=spacing)
    return int(np.count_nonzero(uncertain[box] & (distance <= NEAR_MM)))
