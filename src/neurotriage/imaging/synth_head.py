"""The head around a synthetic skull-stripped brain, a rigid patient pose, and resampling into a scanner grid.

The head is concentric shells around the brain mask (CSF, skull tables and diploe, muscle, fat, skin)
plus a neck column below it, built as per-sequence intensity volumes on a coarse grid aligned with
the BraTS grid. A series is sampled through voxel-to-voxel affine maps composed from the affines and
the pose, so every world coordinate follows from the headers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from neurotriage.imaging.naming import SEQUENCES

SAMPLE_THREADS = 2
SHELL_MM = 2.0  # voxel size of the head-shell grid: the shells are smooth at this scale
PAD_MM = {"x": 24.0, "y": 24.0, "below": 84.0, "above": 26.0}  # head room around the BraTS grid
# Relative intensity (to the brain's median, per sequence: flair, t1, t1ce, t2) of each layer, and the
# distance from the brain surface (mm) where the layer is at its centre. Fat is bright on T1 and T2,
# cortical bone dark everywhere, CSF bright on T2 and dark on T1 and FLAIR.
LAYERS = (
    ("csf", 0.0, (0.25, 0.3, 0.32, 3.2)),
    ("csf", 1.8, (0.25, 0.3, 0.32, 3.2)),
    ("inner table", 3.4, (0.04, 0.04, 0.04, 0.04)),
    ("diploe", 5.0, (0.9, 1.4, 1.45, 1.0)),
    ("outer table", 6.6, (0.04, 0.04, 0.04, 0.04)),
    ("galea and muscle", 8.4, (0.8, 0.8, 0.85, 0.6)),
)
MUSCLE = (0.8, 0.8, 0.85, 0.6)
CORE_MM = 9.5  # brain surface to the outer edge of the muscle layer: the fat starts here
# Outside the core (head or neck): distance (mm) from the core's surface -> relative intensity.
OUTER = (
    ("fat", 0.5, (1.8, 2.1, 2.1, 1.7)),
    ("fat", 3.5, (1.8, 2.1, 2.1, 1.7)),
    ("skin", 5.0, (0.9, 0.9, 0.95, 0.9)),
    ("air", 6.5, (0.0, 0.0, 0.0, 0.0)),
)
NECK_RADII_MM = (52.0, 58.0)  # left-right and front-back half axes of the neck column


@dataclass
class Pose:
    """A rigid pose: BraTS (SRI24) world -> scanner world, rotation about the brain centre."""

    rotation_deg: tuple[float, float, float]  # about x, y, z; applied as Rz @ Ry @ Rx
    translation_mm: tuple[float, float, float]
    centre_mm: tuple[float, float, float]
    matrix: np.ndarray  # 4x4

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map (n, 3) BraTS world points to scanner world."""
        return points @ self.matrix[:3, :3].T + self.matrix[:3, 3]


def random_pose(rng: np.random.Generator, centre: np.ndarray, max_deg: float = 15.0, max_mm: float = 20.0) -> Pose:
    """A random head pose: each rotation within +-max_deg, each translation within +-max_mm."""
    ax, ay, az = rng.uniform(-max_deg, max_deg, 3)
    shift = rng.uniform(-max_mm, max_mm, 3)
    rotation = _rot_z(az) @ _rot_y(ay) @ _rot_x(ax)
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre + shift - rotation @ centre
    return Pose(_rounded((ax, ay, az)), _rounded(shift), _rounded(centre), matrix)


def _rounded(values) -> tuple[float, float, float]:
    return tuple(round(float(v), 4) for v in values)


def _rot_x(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def shell_affine(brats_affine: np.ndarray) -> np.ndarray:
    """The coarse head grid's affine: BraTS axes, SHELL_MM voxels, padded around the BraTS grid."""
    pad_voxels = np.array([PAD_MM["x"], PAD_MM["y"], PAD_MM["below"]])
    affine = brats_affine.copy()
    affine[:3, :3] = brats_affine[:3, :3] * SHELL_MM
    affine[:3, 3] = brats_affine[:3, :3] @ -pad_voxels + brats_affine[:3, 3]
    return affine


def shell_shape(brats_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Shape of the coarse head grid."""
    mm = np.array(brats_shape) + [2 * PAD_MM["x"], 2 * PAD_MM["y"], PAD_MM["below"] + PAD_MM["above"]]
    return tuple(int(v) for v in np.ceil(mm / SHELL_MM))


def head_shells(rng: np.random.Generator, brain: np.ndarray, brats_affine: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sequence relative intensity of everything but the brain, on the coarse head grid (float32)."""
    shape = shell_shape(brain.shape)
    coarse = _coarse_mask(brain, brats_affine, shell_affine(brats_affine), shape)
    scale = rng.uniform(0.85, 1.2)  # skull and scalp thickness vary between people
    d_brain = ndi.distance_transform_edt(~coarse).astype(np.float32) * np.float32(SHELL_MM / scale)
    core = (d_brain <= CORE_MM) | _neck(coarse)
    d_core = ndi.distance_transform_edt(~core).astype(np.float32) * np.float32(SHELL_MM / scale)
    inner_mm = [d for _, d, _ in LAYERS]
    outer_mm = [d for _, d, _ in OUTER]
    shells = {}
    for s, name in enumerate(SEQUENCES):
        inner = np.interp(d_brain, inner_mm, [v[s] for _, _, v in LAYERS]).astype(np.float32)
        outer = np.interp(d_core, outer_mm, [v[s] for _, _, v in OUTER]).astype(np.float32)
        inside = np.where(d_brain <= CORE_MM, inner, np.float32(MUSCLE[s]))
        shells[name] = np.where(core, inside, outer)
    return shells


def _coarse_mask(brain: np.ndarray, brats_affine: np.ndarray, affine: np.ndarray, shape: tuple) -> np.ndarray:
    """The brain mask on the coarse grid: any brain within a coarse voxel's centre sample."""
    grid = np.linalg.inv(brats_affine) @ affine
    fraction = ndi.affine_transform(brain.astype(np.float32), grid[:3, :3], grid[:3, 3], shape, order=1)
    return fraction > 0.5


def _neck(coarse_brain: np.ndarray) -> np.ndarray:
    """An elliptical neck column under the brain's lowest part, reaching up to blend into the head."""
    i, j, k = np.nonzero(coarse_brain)
    bottom = k.min()
    low = k <= bottom + 6
    ci, cj = i[low].mean(), j[low].mean()
    ri, rj = (r / SHELL_MM for r in NECK_RADII_MM)
    ii, jj = np.ogrid[: coarse_brain.shape[0], : coarse_brain.shape[1]]
    ellipse = ((ii - ci) / ri) ** 2 + ((jj - cj) / rj) ** 2 <= 1
    neck = np.zeros(coarse_brain.shape, bool)
    neck[:, :, : bottom + 12] = ellipse[:, :, None]
    return neck


def sample(
    volume: np.ndarray, affine: np.ndarray, pose: Pose, out_affine: np.ndarray, out_shape: tuple[int, ...]
) -> np.ndarray:
    """Linear resample of a BraTS-space volume onto a scanner-space grid (zero outside the volume)."""
    # output voxel -> scanner world -> BraTS world -> input voxel
    grid = np.linalg.inv(affine) @ np.linalg.inv(pose.matrix) @ out_affine
    # SimpleITK indexes an array [i, j, k] as (k, j, i): resample in index space with the axes reversed,
    # so no header or LPS convention of SimpleITK's takes part; the world lives in the numpy affines only.
    transform = sitk.AffineTransform(3)
    transform.SetMatrix(grid[2::-1, 2::-1].ravel().tolist())
    transform.SetTranslation(grid[2::-1, 3].tolist())
    reference = sitk.Image([int(n) for n in out_shape[::-1]], sitk.sitkFloat32)
    resampler = sitk.ResampleImageFilter()
    resampler.SetReferenceImage(reference)
    resampler.SetTransform(transform)
    resampler.SetInterpolator(sitk.sitkLinear)
    resampler.SetOutputPixelType(sitk.sitkFloat32)
    resampler.SetNumberOfThreads(SAMPLE_THREADS)
    return sitk.GetArrayFromImage(resampler.Execute(sitk.GetImageFromArray(volume.astype(np.float32, copy=False))))
