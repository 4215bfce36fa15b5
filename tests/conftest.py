"""Shared fixtures: an isolated NEUROTRIAGE_HOME and tiny BraTS-layout cases."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from neurotriage.imaging.io import Case, load_seg, write_nifti
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, Naming, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA, PostProcess
from neurotriage.segmentation.prediction import Segmentation


@pytest.hookimpl(trylast=True)  # after pytest groups parametrised fixtures, so this order is final
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the test files that hold slow tests first (a stable sort: otherwise pytest's order): `make test` hands
    whole files to two processes, and a long file started last would leave one of them idle meanwhile."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


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


@dataclass(frozen=True)
class OracleConfig:
    """The parts of a ModelConfig the diagnosis reads: id, architecture and the saved settings."""

    model_id: str = "oracle-test"
    arch: str = "oracle"
    postprocess: PostProcess = DEFAULT_POST
    tta: bool = DEFAULT_TTA


@dataclass
class OracleModel:
    """Stands in for a SegmentationModel: predicts the case's reference segmentation.

    Tests of the chain around segmentation (diagnose, web jobs) use it so their outcome does not
    depend on a model's quality; the shipped model has tests of its own."""

    source: Path
    config: OracleConfig
    sha256: str

    def check_case(self, case: Case) -> None:
        """Any grid is fine for the oracle."""

    def predict(self, case: Case, **_) -> np.ndarray:
        """The reference labels stored beside the images."""
        return load_seg(case.files.seg, case.files.naming)

    def segment(self, case: Case, **_) -> Segmentation:
        """The reference labels, certain everywhere (an all-zero uncertainty map)."""
        labels = self.predict(case)
        return Segmentation(labels, np.zeros(labels.shape, np.uint8))


def install_oracle(folder: Path, monkeypatch: pytest.MonkeyPatch) -> OracleModel:
    """Replace the segmentation model loader with an OracleModel whose weights file lies in `folder`."""
    weights = folder / "oracle.pt"
    weights.write_bytes(b"oracle weights")
    model = OracleModel(weights, OracleConfig(), "0" * 64)
    monkeypatch.setattr("neurotriage.segmentation.infer.load_model", lambda _path=None: model)
    return model


@pytest.fixture
def oracle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OracleModel:
    """Replace the segmentation model loader with an OracleModel for this test."""
    return install_oracle(tmp_path, monkeypatch)
