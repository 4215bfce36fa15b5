"""Thick-slice acquisition for the synthetic cohort: slabs averaged, then interpolated back to 1 mm.

Many clinical FLAIR and T2 series (sometimes all four sequences) are 2D acquisitions with 4-6 mm
slices; BraTS resamples them to the 1 mm grid, so the image stays blurred along the slice axis
only. A slice here is a slab of `thickness` voxels averaged with equal weight (no gap); slab
centres lie `thickness` voxels apart, starting at `phase`, and linear interpolation between them
fills the 1 mm grid back in (constant beyond the first and last centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurotriage.imaging.sri24 import BRATS_AFFINE

AXIS_NAMES = ("sagittal", "coronal", "axial")  # slice planes, by the world axis the slices are stacked along


@dataclass(frozen=True)
class SliceStack:
    """How one sequence was acquired: slabs of `thickness` voxels stacked along array `axis`."""

    axis: int
    thickness: int
    phase: int  # where the first full slab starts, 0 <= phase < thickness

    def describe(self) -> dict:
        """truth.json form: the slice plane and thickness in mm (1 mm voxels)."""
        return {"plane": AXIS_NAMES[world_axis(self.axis)], "mm": self.thickness}


def world_axis(array_axis: int) -> int:
    """The world (RAS) axis an array axis of the BraTS grid runs along (0 x, 1 y, 2 z)."""
    return int(np.argmax(np.abs(BRATS_AFFINE[:3, array_axis])))


def axial_axis() -> int:
    """The array axis of the BraTS grid that runs inferior-superior (from the affine, not by habit)."""
    return int(np.argmax(np.abs(BRATS_AFFINE[2, :3])))


def thick_slices(image: np.ndarray, stack: SliceStack) -> np.ndarray:
    """`image` as a thick-slice acquisition resampled to its own grid (float32, same shape)."""
    if stack.thickness <= 1:
        return image.astype(np.float32, copy=True)
    moved = np.moveaxis(image.astype(np.float32, copy=False), stack.axis, 0)
    n, t = moved.shape[0], stack.thickness
    starts = np.arange(stack.phase - t, n, t)  # slabs may hang over either end: they average what is inside
    cum = np.concatenate([np.zeros((1, *moved.shape[1:]), np.float64), np.cumsum(moved, axis=0, dtype=np.float64)])
    lo, hi = np.clip(starts, 0, n), np.clip(starts + t, 0, n)
    keep = hi > lo
    lo, hi, starts = lo[keep], hi[keep], starts[keep]
    slabs = (cum[hi] - cum[lo]) / (hi - lo).reshape(-1, *([1] * (moved.ndim - 1)))
    centres = (lo + hi - 1) / 2.0
    out = _interpolate(slabs, centres, n)
    return np.moveaxis(out.astype(np.float32), 0, stack.axis)


def _interpolate(slabs: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of slab values at `centres` onto 0..n-1 along axis 0, constant at the ends."""
    z = np.arange(n, dtype=np.float64)
    upper = np.clip(np.searchsorted(centres, z, side="right"), 1, len(centres) - 1) if len(centres) > 1 else None
    if upper is None:
        return np.broadcast_to(slabs[:1], (n, *slabs.shape[1:])).copy()
    lower = upper - 1
    w = np.clip((z - centres[lower]) / (centres[upper] - centres[lower]), 0, 1)
    w = w.reshape(-1, *([1] * (slabs.ndim - 1)))
    return slabs[lower] * (1 - w) + slabs[upper] * w
