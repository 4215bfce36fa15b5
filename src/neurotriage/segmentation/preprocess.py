"""Preprocessing recipes: one case in, network-ready arrays out, identical for training and inference.

Two recipes exist. `classic` is the well-known Keras BraTS recipe (FLAIR, T1ce, T2 min-max scaled
to [0, 1], a 128³ crop around the brain, cases under 1 % tumour dropped). `standard` keeps all four
sequences z-scored inside the brain and crops to the brain's bounding box. Whatever the recipe,
inference always runs on the brain's bounding box: outside it every sequence is zero, which is
exactly the zero padding the network sees at the crop border, so nothing is lost and time is saved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from neurotriage.errors import UserError
from neurotriage.imaging.io import Case
from neurotriage.imaging.naming import SEQUENCES


@dataclass(frozen=True)
class Recipe:
    """How a case becomes network input: sequences used, intensity scaling, crop, inclusion rule."""

    name: str
    channels: tuple[str, ...]
    normalize: str  # "minmax" (whole volume to [0, 1]) or "zscore" (inside the brain, background 0)
    crop_size: int | None  # a cube of this edge centred on the brain; None = the brain's bounding box
    min_tumour_fraction: float  # cases with less tumour (in the crop) are left out of training data

    def to_dict(self) -> dict:
        """Plain-data form, stored in prepared folders and checkpoints."""
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        """Rebuild a recipe saved with `to_dict`."""
        return cls(**{**data, "channels": tuple(data["channels"])})


RECIPES = {
    "classic": Recipe("classic", ("flair", "t1ce", "t2"), "minmax", 128, 0.01),
    "standard": Recipe("standard", SEQUENCES, "zscore", None, 0.0),
}

Box = tuple[tuple[int, int], ...]  # (start, stop) per axis


def brain_mask(case: Case) -> np.ndarray:
    """Voxels where any sequence is non-zero: BraTS images are skull-stripped with a zero background."""
    mask = np.zeros(case.shape, bool)
    for volume in case.images.values():
        mask |= volume != 0
    return mask


def bounding_box(mask: np.ndarray) -> Box:
    """Tight (start, stop) box around the True voxels of a mask."""
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def centred_box(box: Box, size: int, shape: tuple[int, ...]) -> Box:
    """A `size`-edged box centred on `box`, shifted to stay inside `shape` where it fits."""
    out = []
    for (start, stop), extent in zip(box, shape, strict=True):
        lo = (start + stop) // 2 - size // 2
        lo = max(0, min(lo, extent - size)) if extent >= size else (extent - size) // 2
        out.append((lo, lo + size))
    return tuple(out)


def crop(volume: np.ndarray, box: Box) -> np.ndarray:
    """Cut a box out of the last three axes, zero-padding where the box leaves the volume."""
    spatial = volume.shape[-3:]
    inner = tuple(slice(max(a, 0), min(b, n)) for (a, b), n in zip(box, spatial, strict=True))
    part = volume[(..., *inner)]
    pads = [(max(-a, 0), max(b - n, 0)) for (a, b), n in zip(box, spatial, strict=True)]
    if not any(lo or hi for lo, hi in pads):
        return part
    return np.pad(part, [(0, 0)] * (volume.ndim - 3) + pads)


def _scale(volume: np.ndarray, mask: np.ndarray, box: Box, name: str, case: Case, method: str) -> np.ndarray:
    """Scale with statistics of the whole volume (min-max) or brain (z-score), applied to the crop only."""
    part = crop(volume, box)
    if method == "minmax":
        lo, hi = float(volume.min()), float(volume.max())
        if hi <= lo:
            raise UserError(f"{case.files.images[name]}: image '{name}' is constant ({lo}); cannot min-max scale it")
        return (part - lo) * (1.0 / (hi - lo))
    values = volume[mask]
    mean, std = float(values.mean()), float(values.std())
    if std == 0.0:
        raise UserError(
            f"{case.files.images[name]}: standard deviation is 0 inside the brain for image '{name}'; cannot z-score it"
        )
    out = (part - mean) * (1.0 / std)
    out[~crop(mask, box)] = 0.0  # background stays exactly zero, matching the network's zero padding
    return out


def normalized_channels(case: Case, recipe: Recipe, mask: np.ndarray, box: Box) -> np.ndarray:
    """The recipe's sequences, scaled, stacked (C, X, Y, Z) float32 and cropped to `box`."""
    channels = [_scale(case.images[name], mask, box, name, case, recipe.normalize) for name in recipe.channels]
    return np.stack(channels).astype(np.float32, copy=False)


@dataclass
class Prepared:
    """A case ready for the network: channels-first image, cropped seg, and where the crop sits."""

    image: np.ndarray  # (C, X, Y, Z) float32
    seg: np.ndarray | None  # (X, Y, Z) uint8 internal labels, or None
    box: Box

    @property
    def tumour_fraction(self) -> float:
        """Share of crop voxels that are tumour (any label > 0)."""
        return float(np.count_nonzero(self.seg)) / self.seg.size if self.seg is not None else 0.0


def _brain_box(case: Case, mask: np.ndarray) -> Box:
    if not mask.any():
        raise UserError(f"{case.files.folder}: every sequence is zero everywhere; no brain to segment")
    return bounding_box(mask)


def prepare_training(case: Case, recipe: Recipe) -> Prepared:
    """Arrays for training: the recipe's crop (fixed cube or brain box) with the cropped seg."""
    mask = brain_mask(case)
    box = _brain_box(case, mask)
    if recipe.crop_size is not None:
        box = centred_box(box, recipe.crop_size, case.shape)
    seg = crop(case.seg, box) if case.seg is not None else None
    return Prepared(normalized_channels(case, recipe, mask, box), seg, box)


def prepare_inference(case: Case, recipe: Recipe) -> Prepared:
    """Arrays for inference: the recipe's scaling on the brain's bounding box, whatever the recipe's crop."""
    mask = brain_mask(case)
    box = _brain_box(case, mask)
    return Prepared(normalized_channels(case, recipe, mask, box), None, box)
