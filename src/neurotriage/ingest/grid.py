"""The BraTS 1 mm grid as SimpleITK images, and moving arrays between it and RAS-ordered arrays.

A BraTS array is indexed (i, j, k) with i towards the patient's left, j posterior, k superior, and the
BraTS header puts voxel (i, j, k) at RAS (-i, 239 - j, k) mm. SimpleITK works in LPS, where the same
point is (i, j - 239, k): an identity direction with origin (0, -239, 0). The SRI24 template from
`sri24.template_and_masks()` is in that array order, so on this grid template space and BraTS space
are one physical space, and every registration to the template lands in BraTS space.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from neurotriage.imaging.sri24 import GRID_SHAPE, template_and_masks

BRATS_ORIGIN_LPS = (0.0, -239.0, 0.0)


def brats_image(array: np.ndarray) -> sitk.Image:
    """A BraTS-ordered (i, j, k) array as a SimpleITK image on the BraTS grid."""
    if array.shape != GRID_SHAPE:
        raise ValueError(f"a BraTS array is {GRID_SHAPE}, not {array.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetOrigin(BRATS_ORIGIN_LPS)
    return image


def brats_array(image: sitk.Image) -> np.ndarray:
    """The BraTS-ordered (i, j, k) array of an image on the BraTS grid."""
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def template_image() -> sitk.Image:
    """The SRI24 T1 brain template (about 0 to 1) on the BraTS grid."""
    return brats_image(template_and_masks()["template"].astype(np.float32))


def to_brats_grid(image: sitk.Image, transform: sitk.Transform, interpolator: int = sitk.sitkLinear) -> np.ndarray:
    """`image` resampled onto the BraTS grid through `transform` (BraTS point to image point), as float32 (i, j, k)."""
    reference = sitk.Image([int(n) for n in GRID_SHAPE], sitk.sitkUInt8)
    reference.SetOrigin(BRATS_ORIGIN_LPS)
    resampled = sitk.Resample(image, reference, transform, interpolator, 0.0, sitk.sitkFloat32)
    return brats_array(resampled)


def ras_array(image: sitk.Image) -> tuple[np.ndarray, sitk.Image]:
    """The image's voxels with axes towards R, A, S (the closest axis-aligned order), and the reoriented image.

    The reoriented image carries the geometry to put an array of that order back with `from_ras_array`.
    """
    lps = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(lps).transpose(2, 1, 0)[::-1, ::-1, :], lps


def from_ras_array(array: np.ndarray, lps: sitk.Image, like: sitk.Image) -> sitk.Image:
    """An R, A, S-ordered array made from `ras_array`'s output, back on the grid of `like`."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(array[::-1, ::-1, :].transpose(2, 1, 0)))
    image.CopyInformation(lps)
    return sitk.Resample(image, like, sitk.Transform(), sitk.sitkNearestNeighbor)
