"""Skull stripping with deepbet's two TorchScript models, loaded from its installed wheel.

deepbet (MIT) is installed without its dependencies (its GUI toolkit, pandas and three LGPL
post-processing packages are not needed): this module loads its models itself and does its
post-processing (largest connected component, holes filled) with `scipy.ndimage`. Its wheel puts
the models in a top-level `data/` folder of site-packages, so they are found through the
distribution's own file list rather than by that generic path.

The input is a T1-weighted head on a 1 mm grid, as an array whose axes are RAS-ordered (deepbet was
trained on canonical RAS volumes); the mask comes back in the same order.
"""

from __future__ import annotations

import functools
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from neurotriage.errors import UserError
from neurotriage.segmentation.scripted import TORCHSCRIPT_DEPRECATED

MODEL_FILES = {"bbox": "data/models/bbox_model.pt", "brain": "data/models/model.pt"}
SMALL_SHAPE = (128, 128, 128)
FULL_SHAPE = (256, 256, 256)
BOX_MARGIN = 0.1
THRESHOLD = 0.5
# deepbet's intensity normalisation: robust range to [0, 1], standardised, then ImageNet's grey mean/std.
LOW_Q, HIGH_Q = 0.005, 0.995
NORM_STD, NORM_MEAN = 0.226, 0.449
BOX_FOREGROUND = 0.02


@functools.lru_cache(maxsize=1)
def _models() -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    return _load("bbox"), _load("brain")


def _load(name: str) -> torch.jit.ScriptModule:
    path = _model_path(name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", TORCHSCRIPT_DEPRECATED, DeprecationWarning)
        model = torch.jit.load(str(path), map_location="cpu")
    model.eval()
    return model


def _model_path(name: str) -> Path:
    """The installed path of one of deepbet's models, from the distribution's own file list."""
    try:
        dist = metadata.distribution("deepbet")
    except metadata.PackageNotFoundError:
        raise UserError(
            "deepbet is not installed; run `make setup` (it installs deepbet without its dependencies)"
        ) from None
    path = Path(str(dist.locate_file(MODEL_FILES[name])))
    if not path.is_file():
        raise UserError(f"{path}: deepbet's {name} model is missing from its installation; reinstall deepbet")
    return path


def brain_mask(t1_ras: np.ndarray) -> np.ndarray:
    """deepbet's brain mask (bool, same shape) of a 1 mm T1-weighted head whose array axes are R, A, S."""
    bbox_model, model = _models()
    x = torch.nan_to_num(torch.from_numpy(np.ascontiguousarray(t1_ras, dtype=np.float32)))
    small = F.interpolate(x[None, None], SMALL_SHAPE, mode="nearest-exact")[0, 0]
    low, high = small.quantile(LOW_Q), small.quantile(HIGH_Q)
    with torch.inference_mode():
        coarse = bbox_model(_normalise(small, low, high)[None, None])[0, 1].numpy() > THRESHOLD
    box = _box(_largest_component(coarse), x.shape)
    with torch.inference_mode():
        crop = F.interpolate(x[box][None, None], FULL_SHAPE, mode="nearest-exact")
        prob = model(_normalise(crop[0, 0], low, high)[None, None])[0, 1]
        prob = F.interpolate(prob[None, None], x[box].shape, mode="nearest-exact")[0, 0].numpy()
    mask = np.zeros(x.shape, bool)
    mask[box] = ndimage.binary_fill_holes(_largest_component(prob > THRESHOLD))
    return mask


def _normalise(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    x = ((x - low) / (high - low)).clamp(0, 1)
    return NORM_STD * (x - x.mean()) / x.std() + NORM_MEAN


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component (deepbet's cc3d default connectivity)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == sizes.argmax()


def _box(coarse: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The coarse brain's bounding box scaled to the full grid, widened by 10 % of its size on each side."""
    scale = np.array(shape) / np.array(coarse.shape)
    box = []
    for axis, (extent, factor) in enumerate(zip(shape, scale, strict=True)):
        profile = coarse.mean(axis=tuple(a for a in range(3) if a != axis))
        found = np.flatnonzero(profile > BOX_FOREGROUND)
        if found.size == 0:
            raise UserError("skull stripping found no brain in the T1 image", field="t1")
        centre = factor * (found.max() + 1 + found.min()) / 2
        size = factor * (found.max() + 1 - found.min()) * (1 + 2 * BOX_MARGIN)
        centre, size = round(centre), round(size)
        box.append(slice(max(0, int(centre - size / 2)), min(extent, int(centre + size / 2))))
    return tuple(box)
