"""Reading a `prepare` output folder for training: manifest, train/validation split, MONAI transforms."""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurotriage.errors import UserError
from neurotriage.segmentation.prepare import FORMAT, MANIFEST
from neurotriage.segmentation.preprocess import Recipe


@dataclass(frozen=True)
class PreparedData:
    """A prepared folder: its recipe, its cases (ID -> .npz path) and the one grid they share."""

    folder: Path
    recipe: Recipe
    files: dict[str, Path]
    grid: dict


def is_prepared(folder: Path) -> bool:
    """True when `folder` is a `prepare` output (it holds dataset.json)."""
    return (folder / MANIFEST).is_file()


def open_prepared(folder: Path) -> PreparedData:
    """Read a prepared folder's manifest; its cases must exist and share one grid."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the prepared-data manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{path}: not a neurotriage prepared-data manifest")
    cases = manifest["cases"]
    if not cases:
        raise UserError(f"{folder}: no prepared cases to train on (see 'excluded' in {MANIFEST})")
    grids = {json.dumps(entry["grid"], sort_keys=True) for entry in cases.values()}
    if len(grids) > 1:
        raise UserError(f"{folder}: cases lie on {len(grids)} different grids; train on one grid at a time")
    files = {cid: folder / entry["file"] for cid, entry in sorted(cases.items())}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: listed in {MANIFEST} but missing; re-run prepare")
    grid = next(iter(cases.values()))["grid"]
    return PreparedData(folder, Recipe.from_dict(manifest["recipe"]), files, grid)


def split_cases(case_ids: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded shuffle into (train, validation); at least one of each when there are two or more cases."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"validation fraction {val_fraction} is outside [0, 1)", field="val_fraction")
    ids = sorted(case_ids)
    random.Random(seed).shuffle(ids)
    n_val = round(len(ids) * val_fraction)
    if val_fraction > 0 and len(ids) >= 2:
        n_val = min(max(n_val, 1), len(ids) - 1)
    return sorted(ids[n_val:]), sorted(ids[:n_val])


def load_prepared(item: dict) -> dict:
    """Transform: {'path'} -> {'image' (C,X,Y,Z) float32, 'label' (1,X,Y,Z) uint8} tensors."""
    with np.load(item["path"]) as npz:
        image = npz["image"].astype(np.float32)
        seg = npz["seg"]
    return {"image": torch.from_numpy(image), "label": torch.from_numpy(seg[None])}


def shading_augmentation() -> list:
    """Pose and intensity shading: affine, a bias field over all channels and one per channel, gamma.

    Real scans differ from any generator in contrast and bias (the shared real case's FLAIR is about
    1.45x white matter along the brain's edge); these keep the network from calling smooth brightness tumour.
    """
    from monai import transforms as T  # MONAI: only when a dataset is built (start-up time)

    from neurotriage.segmentation.augment import RandChannelBiasFieldd  # MONAI (start-up time)

    keys = ["image", "label"]
    return [
        T.RandAffined(
            keys, prob=0.3, rotate_range=(0.26,) * 3, scale_range=(0.15,) * 3, mode=("bilinear", "nearest"),
            padding_mode="zeros",
        ),
        T.RandBiasFieldd("image", prob=0.3, coeff_range=(0.0, 0.3)),
        RandChannelBiasFieldd("image", prob=0.4),  # up to about 1.3x over most of a crop
        T.RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
    ]  # fmt: skip


def acquisition_augmentation() -> list:
    """Sharpness, resolution and noise: blur, simulated low resolution, thick slices (often of one sequence
    only), Gaussian noise. They also blur the faint edge a generator-v9 label is drawn at."""
    from monai import transforms as T  # MONAI: only when a dataset is built (start-up time)

    from neurotriage.segmentation.augment import RandThickSlicesd  # MONAI (start-up time)

    return [
        T.RandGaussianSmoothd("image", prob=0.2, sigma_x=(0.3, 1.0), sigma_y=(0.3, 1.0), sigma_z=(0.3, 1.0)),
        T.RandSimulateLowResolutiond("image", prob=0.2, zoom_range=(0.5, 1.0)),
        # 2D FLAIR and T2 are mostly acquired axially, in 3-6 mm slices, and often only they are.
        RandThickSlicesd("image", prob=0.6, channel_prob=0.5, axial_prob=0.6),
        T.RandGaussianNoised("image", prob=0.3, std=0.1),
    ]


def strong_augmentation() -> list:
    """Scanner and anatomy variation for synthetic-to-real transfer, applied to the crop (cheap): shading,
    then acquisition."""
    return shading_augmentation() + acquisition_augmentation()


EXTRA_AUGMENTATION = {"basic": list, "shading": shading_augmentation, "strong": strong_augmentation}


def train_transforms(roi: tuple[int, int, int], augment: str = "basic"):
    """Random crops (half centred on tumour), flips on every axis, per-channel intensity jitter; `augment`
    "shading" adds `shading_augmentation()`, "strong" `strong_augmentation()`."""
    from monai import transforms as T  # MONAI: only when a dataset is built (start-up time)

    keys = ["image", "label"]
    extra = EXTRA_AUGMENTATION[augment]()
    return T.Compose(
        [
            load_prepared,
            T.SpatialPadd(keys, spatial_size=roi),
            T.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=roi, pos=1.0, neg=1.0, num_samples=1),
            T.RandFlipd(keys, prob=0.5, spatial_axis=0),
            T.RandFlipd(keys, prob=0.5, spatial_axis=1),
            T.RandFlipd(keys, prob=0.5, spatial_axis=2),
            *extra,
            T.RandScaleIntensityd("image", factors=0.1, prob=1.0, channel_wise=True),
            T.RandShiftIntensityd("image", offsets=0.1, prob=1.0, channel_wise=True),
        ]
    )


def train_dataset(paths: list[Path], roi, augment: str = "basic", cache: bool = False, workers: int = 1):
    """Random crops of the given prepared cases; with `cache` the decoded cases stay in memory,
    decoded by `workers` threads."""
    from monai.data import CacheDataset, Dataset  # MONAI: only when a dataset is built (start-up time)

    # A tumour-free case has no foreground to centre half the crops on; MONAI then samples background
    # only, which is right, but warns on every crop. Forked loader workers inherit this filter.
    warnings.filterwarnings("ignore", message="Num foregrounds 0", category=UserWarning)
    items = [{"path": str(p)} for p in paths]
    transform = train_transforms(roi, augment)
    # CacheDataset keeps the output of the leading deterministic steps (load + pad) in memory.
    if cache:
        return CacheDataset(items, transform, progress=False, num_workers=max(workers, 1))
    return Dataset(items, transform=transform)


def train_loader(dataset, batch_size: int, workers: int, sampler=None):
    """A MONAI DataLoader over a `train_dataset`."""
    from monai.data import DataLoader  # MONAI: only when a dataset is built (start-up time)

    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        num_workers=workers,
        drop_last=False,
    )
