"""Segmentation fixtures: tiny learnable BraTS-layout cases, a prepared folder, a trained tiny model.

Cases are 40×44×36 voxels: a bright ellipsoid "brain" holding a spherical tumour (core, an
enhancing rim bright on T1ce, edema bright on FLAIR/T2), so a few training steps learn something.
Everything heavy is session-scoped and shared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, Naming, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE

TINY_SHAPE = (40, 44, 36)
# Mean intensity per sequence for brain, core (1), edema (2), enhancing (3).
CONTRAST = {
    "flair": (400, 500, 800, 600),
    "t1": (500, 300, 420, 450),
    "t1ce": (450, 320, 430, 900),
    "t2": (350, 800, 750, 600),
}


def blob_arrays(seed: int, shape=TINY_SHAPE) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four int16 sequences and internal labels of one tiny synthetic case."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    size = np.array(shape, np.float32)[:, None, None, None]
    brain = (((grid - size / 2) / (size * 0.45)) ** 2).sum(0) <= 1
    centre = (size[:, 0, 0, 0] / 2 + rng.uniform(-5, 5, 3))[:, None, None, None]
    radius = rng.uniform(4.0, 6.5)
    dist = np.sqrt(((grid - centre) ** 2).sum(0))
    seg = np.zeros(shape, np.uint8)
    seg[(dist <= radius * 1.7) & brain] = 2
    seg[dist <= radius] = 3
    seg[dist <= radius * 0.6] = 1
    images = {}
    for key in SEQUENCES:
        means = np.array(CONTRAST[key], np.float32)
        volume = means[seg] + rng.normal(0, 25, shape)
        images[key] = np.where(brain, volume, 0).astype(np.int16)
    return images, seg


def write_blob_case(root: Path, case_id: str, seed: int, naming: Naming = BRATS2020, shape=TINY_SHAPE) -> Path:
    """Write one tiny case folder (four sequences + seg) and return it."""
    images, seg = blob_arrays(seed, shape)
    folder = root / case_id
    for key, volume in images.items():
        write_nifti(volume, BRATS_AFFINE, folder / naming.filename(case_id, key))
    write_nifti(from_internal(seg, naming), BRATS_AFFINE, folder / naming.filename(case_id, "seg"))
    return folder


@pytest.fixture(scope="session")
def blob_case() -> Callable[..., Path]:
    """Factory: write_blob_case(root, case_id, seed, naming=BRATS2020, shape=TINY_SHAPE)."""
    return write_blob_case


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tiny labelled cases in BraTS 2020 naming."""
    root = tmp_path_factory.mktemp("cohort")
    for i in range(4):
        write_blob_case(root, f"TINY_{i:03d}", seed=i)
    return root


@pytest.fixture(scope="session")
def prepared_tiny(tiny_cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny cohort prepared with the standard recipe (in-process, no worker start-up)."""
    from neurotriage.segmentation.prepare import prepare_dataset
    from neurotriage.segmentation.preprocess import RECIPES

    out = tmp_path_factory.mktemp("prepared")
    prepare_dataset(tiny_cohort, out, RECIPES["standard"], workers=1, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(prepared_tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-epoch run of a tiny fastunet on the tiny cohort; its folder holds best.pt and last.pt."""
    from neurotriage.segmentation.train import train
    from neurotriage.segmentation.train_config import TrainConfig

    out = tmp_path_factory.mktemp("run") / "run"
    config = TrainConfig(str(prepared_tiny), str(out), width=4, epochs=4, batch_size=2, lr=1e-2, roi=32,
                         val_fraction=0.25, workers=0)  # fmt: skip
    train(config)
    return out
