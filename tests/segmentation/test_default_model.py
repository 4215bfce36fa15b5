"""The model shipped in the package: present, intact, and good on synthetic cases it never saw."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from neurotriage.imaging.io import load_case
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.segmentation.default_model import MODEL_ID
from neurotriage.segmentation.infer import default_model_path, load_model
from neurotriage.segmentation.metrics import overlap_scores, region_masks
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA

# Seeds far from the training cohort's (SeedSequence of 2026 and the case index), forced kinds.
FRESH = ((900_001, "enhancing"), (900_002, "non_enhancing"), (900_003, "multifocal"), (900_004, "enhancing"))
# Floors below what the shipped model measured on held-out synthetic cases (MODEL_CARD.md), so a
# broken export, a preprocessing change or a wrong label mapping fails, normal variation does not.
WT_FLOOR, TC_FLOOR = 0.85, 0.80


@pytest.fixture(scope="module")
def shipped():
    path = default_model_path()
    assert path is not None, "the default model must ship in src/neurotriage/weights/default.pt"
    return load_model(None)


def test_shipped_model_identifies_itself(shipped):
    assert shipped.config.model_id == MODEL_ID
    # The post-processing and flip averaging it was tuned with are saved in the file itself.
    saved = torch.load(shipped.source, weights_only=True)["config"]
    assert saved["postprocess"] == asdict(DEFAULT_POST) and saved["tta"] is DEFAULT_TTA
    assert shipped.source.stat().st_size <= 20 * 1024 * 1024


@pytest.mark.slow
def test_shipped_model_beats_a_dice_floor_on_fresh_cases(shipped, tmp_path):
    wt, tc = [], []
    for seed, kind in FRESH:
        folder = write_case(generate_case(seed, f"FRESH_{seed}", kind=kind), tmp_path, BRATS2020)
        case = load_case(folder)
        pred, ref = region_masks(shipped.predict(case)), region_masks(case.seg)
        wt.append(overlap_scores(pred["WT"], ref["WT"])["dice"])
        tc.append(overlap_scores(pred["TC"], ref["TC"])["dice"])
    print(f"fresh cases: WT Dice {wt}, TC Dice {tc}")
    assert np.mean(wt) >= WT_FLOOR, wt
    assert np.mean(tc) >= TC_FLOOR, tc
