"""Clean-up after the network: drop whole-tumour specks too small to be a lesion a clinician would outline.

A model trained on synthetic data leaves scattered false positives on real scans (bright cortex,
vessels, the posterior fossa); they are small, and they mislead the localisation ("crosses the
midline"). Dropping connected components below a volume is the usual BraTS post-processing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

DEFAULT_MIN_COMPONENT_ML = 0.5


def drop_small_components(labels: np.ndarray, spacing: tuple[float, ...], min_ml: float) -> np.ndarray:
    """Labels with every whole-tumour component (26-connected) under `min_ml` millilitres set to background."""
    if min_ml <= 0 or not labels.any():
        return labels
    components, count = ndi.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(components.ravel(), minlength=count + 1) * voxel_ml
    keep = sizes >= min_ml
    keep[0] = False
    return np.where(keep[components], labels, 0).astype(labels.dtype)
