"""Shared fixtures: an isolated NEUROTRIAGE_HOME and tiny BraTS-layout cases."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, Naming, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the user's database: each test session gets its own NEUROTRIAGE_HOME."""
    os.environ["NEUROTRIAGE_HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ.pop("NEUROTRIAGE_DATABASE_URL", None)


def tiny_arrays(shape=(12, 10, 8), seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Four small int16 sequences and an internal-label seg with every label present."""
    rng = np.random.default_rng(seed)
    images = {k: rng.integers(1, 1000, size=shape, dtype=np.int16) for k in SEQUENCES}
    seg = np.zeros(shape, np.uint8)
    seg[2:5, 2:5, 2:5] = 2
    seg[3, 3, 3] = 1
    seg[4, 4, 4] = 3
    return images, seg


@pytest.fixture
def make_case(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a tiny case folder; returns the folder."""

    def _make(
        case_id: str = "CASE_001",
        naming: Naming = BRATS2020,
        root: Path | None = None,
        ext: str = ".nii.gz",
        with_seg: bool = True,
        affine: np.ndarray = BRATS_AFFINE,
    ) -> Path:
        folder = (root or tmp_path) / case_id
        images, seg = tiny_arrays()
        for key, arr in images.items():
            write_nifti(arr, affine, folder / naming.filename(case_id, key, ext))
        if with_seg:
            write_nifti(from_internal(seg, naming), affine, folder / naming.filename(case_id, "seg", ext))
        return folder

    return _make
