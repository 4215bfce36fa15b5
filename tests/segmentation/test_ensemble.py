"""Ensembles: probabilities averaged before labels are decided, in one kind, with one line for models that
cannot combine; and `--model` given more than once on the command line."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.files import sha256_chunks
from neurotriage.imaging.io import load_case
from neurotriage.imaging.labels import BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE
from neurotriage.imaging.naming import BRATS2020, from_internal
from neurotriage.segmentation.ensemble import ensemble, members_of
from neurotriage.segmentation.external import NO_POST, ExternalConfig
from neurotriage.segmentation.loader import load_any_model, load_models
from neurotriage.segmentation.prediction import Prediction, whole_grid
from neurotriage.segmentation.probabilities import CLASSES, REGIONS, Probabilities
from neurotriage.segmentation.uncertainty import uncertainty_map

from .test_monai_bundle import write_bundle

SHAPE = (12, 10, 8)  # tests/conftest.py's tiny case
VOXEL, OTHER = (5, 5, 4), (6, 5, 4)


@dataclass
class Stub:
    """A model whose probabilities are given, on `box`; its labels are its own decision of them."""

    output_kind: str
    values: np.ndarray
    box: tuple[slice, ...]
    threshold: float | None = None
    sha256: str = "a" * 64
    source: Path = Path("stub.pt")
    config: ExternalConfig = field(default_factory=lambda: ExternalConfig("stub", "stub:", tta=False))

    def prediction(self, case, *, tta, precision, probabilities=True) -> Prediction:
        probs = Probabilities(self.output_kind, self.values, self.threshold)
        return Prediction(probs.labels(), self.box, probs)


def classes(box: tuple[slice, ...], voxels: dict[tuple[int, int, int], tuple]) -> Stub:
    """Certain background on `box` but for the given voxels' class probabilities (grid coordinates)."""
    values = np.zeros((4, *(s.stop - s.start for s in box)), np.float32)
    values[BACKGROUND] = 1
    for voxel, p in voxels.items():
        values[(slice(None), *(v - s.start for v, s in zip(voxel, box, strict=True)))] = p
    return Stub(CLASSES, values, box)


def regions(voxels: dict[tuple[int, int, int], tuple], threshold: float = 0.5) -> Stub:
    """No region anywhere on the whole grid but for the given voxels' WT, TC, ET probabilities."""
    values = np.zeros((3, *SHAPE), np.float32)
    for voxel, p in voxels.items():
        values[(slice(None), *voxel)] = p
    return Stub(REGIONS, values, whole_grid(SHAPE), threshold)


@pytest.fixture
def case(make_case):
    return load_case(make_case(), with_seg=False)


def test_averaging_then_deciding_is_not_voting_on_each_models_decision(case):
    a = classes(whole_grid(SHAPE), {VOXEL: (0.0, 0.6, 0.4, 0.0)})  # alone: necrotic core
    b = classes((slice(4, 8), slice(4, 8), slice(2, 6)), {VOXEL: (0.0, 0.0, 0.45, 0.55)})  # alone: enhancing
    alone = [m.prediction(case, tta=False, precision="auto").labels for m in (a, b)]
    assert alone[0][VOXEL] == NECROTIC_CORE and alone[1][1, 1, 2] == ENHANCING  # b's box starts at (4, 4, 2)
    both = ensemble([a, b])
    segmented = both.segment(case)
    # A vote can only pick one of the two decisions; the average (0, 0.3, 0.425, 0.275) is oedema.
    assert segmented.labels[VOXEL] == EDEMA
    assert np.count_nonzero(segmented.labels) == 1  # b's box lies inside a's: certain background around it
    average = Probabilities(CLASSES, np.array([0.0, 0.3, 0.425, 0.275], np.float32).reshape(4, 1, 1, 1))
    assert segmented.uncertainty[VOXEL] == uncertainty_map(average).item() > 0
    assert segmented.uncertainty.sum() == segmented.uncertainty[VOXEL]


def test_softmax_and_sigmoid_models_are_averaged_as_regions(case):
    a = classes(whole_grid(SHAPE), {VOXEL: (0.2, 0.1, 0.3, 0.4), OTHER: (0.1, 0.3, 0.1, 0.5)})
    b = regions({VOXEL: (0.6, 0.3, 0.2), OTHER: (0.9, 0.7, 0.6)})
    both = ensemble([a, b])
    assert (both.output_kind, both.threshold) == (REGIONS, 0.5)
    made = both.prediction(case, tta=False, precision="auto")
    # a's classes as regions: (0.8, 0.5, 0.4) and (0.9, 0.8, 0.5); averaged with b's.
    np.testing.assert_allclose(made.probabilities.values[(slice(None), *VOXEL)], [0.7, 0.4, 0.3], atol=1e-6)
    np.testing.assert_allclose(made.probabilities.values[(slice(None), *OTHER)], [0.9, 0.75, 0.55], atol=1e-6)
    assert a.prediction(case, tta=False, precision="auto").labels[VOXEL] == ENHANCING  # alone: most likely class
    assert made.labels[VOXEL] == EDEMA and made.labels[OTHER] == ENHANCING  # each region kept from 0.5, nested


def test_region_models_with_different_thresholds_are_refused_in_one_line():
    with pytest.raises(UserError) as refused:
        ensemble([regions({}), regions({}, threshold=0.3)])
    message = refused.value.message
    assert "keep a region at probability 0.5 and 0.3: an ensemble keeps its regions at one threshold" in message
    assert refused.value.field == "model" and "\n" not in message


def test_an_ensemble_names_its_members_and_hashes_their_hashes():
    first = classes(whole_grid(SHAPE), {})
    second = Stub(CLASSES, first.values, first.box, sha256="b" * 64, config=ExternalConfig("other", "x:", tta=True))
    both = ensemble([first, second])
    assert both.config.model_id == "ensemble of 2: stub + other"
    assert both.sha256 == sha256_chunks([f"{'a' * 64}\n{'b' * 64}\n".encode()])
    assert (both.config.tta, both.config.postprocess) == (False, NO_POST)  # the first model's settings
    assert members_of(both) == [first, second] and members_of(first) == [first]


def test_segment_and_evaluate_take_several_models(tiny_run, blob_case, tmp_path):
    case_dir = blob_case(tmp_path / "cases", "TINY_000", seed=0)
    bundle = write_bundle(tmp_path / "bundle")
    names = [str(tiny_run / "last.pt"), f"monai-bundle:{bundle}"]
    out = tmp_path / "out"
    out.mkdir()
    assert main(["segment", str(case_dir), "--model", names[0], "--model", names[1], "--out", str(out)]) == 0
    both = load_models(names)
    assert [m.source for m in both.members] == [tiny_run / "last.pt", bundle.resolve()]
    segmented = both.segment(load_case(case_dir, with_seg=False))
    written = np.asarray(nib.load(out / "TINY_000_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(written, from_internal(segmented.labels, BRATS2020))
    stored = np.asarray(nib.load(out / "TINY_000_uncertainty.nii.gz").dataobj.get_unscaled())
    np.testing.assert_array_equal(stored, segmented.uncertainty)
    assert stored.any()  # a bundle with random weights is unsure somewhere
    assert load_models(names[:1]).source == load_any_model(names[0]).source  # one name: that model itself

    metrics = tmp_path / "metrics.json"
    assert (
        main(["evaluate", str(case_dir.parent), "--model", names[0], "--model", names[1], "--out", str(metrics)]) == 0
    )
    assert json.loads(metrics.read_text())["model"] == f"{tiny_run / 'last.pt'} + {bundle.resolve()}"
