"""Metrics agree with MONAI (and an independent brute force) on synthetic pairs; CLI `metrics`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.metrics import (
    DiceMetric,
    HausdorffDistanceMetric,
    compute_confusion_matrix_metric,
    compute_iou,
    get_confusion_matrix,
)
from scipy.ndimage import binary_erosion
from scipy.spatial.distance import cdist

from neurotriage.cli import main
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.segmentation.metrics import binary_scores, case_metrics, classic_scores, mean_metrics

SPACING = (1.0, 1.5, 2.0)
SHAPE = (26, 22, 18)


def random_mask(rng: np.random.Generator) -> np.ndarray:
    """A blobby mask: a few random spheres plus speckle, kept off the volume border."""
    grid = np.indices(SHAPE)
    mask = np.zeros(SHAPE, bool)
    for _ in range(rng.integers(1, 4)):
        centre = rng.uniform(5, np.array(SHAPE) - 5)[:, None, None, None]
        mask |= ((grid - centre) ** 2).sum(0) <= rng.uniform(2, 5) ** 2
    mask ^= rng.random(SHAPE) < 0.01
    mask[[0, -1], :, :] = mask[:, [0, -1], :] = mask[:, :, [0, -1]] = False
    return mask


def _t(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask)[None, None].float()


def brute_force_hd95(pred: np.ndarray, ref: np.ndarray) -> float:
    """HD95 from first principles: surface voxels in mm, directed 95th percentiles, the larger one."""
    surfaces = [np.argwhere(m ^ binary_erosion(m)) * np.array(SPACING) for m in (pred, ref)]
    distances = cdist(*surfaces)
    return max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # raised inside MONAI by its own deprecated argument
@pytest.mark.parametrize("seed", range(8))
def test_binary_scores_match_monai(seed):
    rng = np.random.default_rng(seed)
    pred, ref = random_mask(rng), random_mask(rng)
    ours = binary_scores(pred, ref, SPACING)
    dice = DiceMetric(include_background=True, reduction="none")
    dice(_t(pred), _t(ref))
    assert ours["dice"] == pytest.approx(dice.aggregate().item(), abs=1e-6)
    assert ours["iou"] == pytest.approx(compute_iou(_t(pred), _t(ref)).item(), abs=1e-6)
    matrix = get_confusion_matrix(_t(pred), _t(ref))
    for name in ("sensitivity", "specificity"):
        assert ours[name] == pytest.approx(compute_confusion_matrix_metric(name, matrix).item(), abs=1e-6)
    hd = HausdorffDistanceMetric(include_background=True, percentile=95, reduction="none")
    hd(_t(pred), _t(ref), spacing=list(SPACING))
    assert ours["hd95"] == pytest.approx(hd.aggregate().item(), abs=1e-6)
    assert ours["hd95"] == pytest.approx(brute_force_hd95(pred, ref), abs=1e-6)


def test_empty_mask_rules():
    empty = np.zeros(SHAPE, bool)
    full = random_mask(np.random.default_rng(0))
    both = binary_scores(empty, empty, SPACING)
    assert both["dice"] == 1.0 and both["iou"] == 1.0 and both["hd95"] is None and both["sensitivity"] is None
    one = binary_scores(full, empty, SPACING)
    assert one["dice"] == 0.0 and one["iou"] == 0.0 and one["hd95"] is None
    other = binary_scores(empty, full, SPACING)
    assert other["dice"] == 0.0 and other["hd95"] is None and other["sensitivity"] == 0.0


def test_regions_classic_scores_and_means():
    ref = np.zeros(SHAPE, np.uint8)
    ref[4:12, 4:12, 4:12] = 2
    ref[6:10, 6:10, 6:10] = 1
    ref[7:9, 7:9, 7:9] = 3
    pred = ref.copy()
    pred[7:9, 7:9, 7:9] = 1  # enhancing missed: ET empty in the prediction, TC and WT intact
    scores = case_metrics(pred, ref, SPACING)
    assert scores["WT"]["dice"] == 1.0 and scores["TC"]["dice"] == 1.0
    assert scores["ET"]["dice"] == 0.0 and scores["ET"]["hd95"] is None
    classic = classic_scores(pred, ref)
    assert classic["iou_per_label"]["enhancing"] == 0.0
    assert classic["iou_per_label"]["necrotic/non-enhancing core"] == pytest.approx((64 - 8) / 64)
    assert classic["accuracy"] == pytest.approx(1 - 8 / ref.size)
    mean = mean_metrics([scores, case_metrics(ref, ref, SPACING)])
    assert mean["ET"]["dice"] == {"mean": 0.5, "n": 2}
    assert mean["ET"]["hd95"] == {"mean": 0.0, "n": 1}  # the null HD95 is left out, and counted


def test_metrics_cli_json_reads_label_schemes_from_values(tmp_path, capsys):
    rng = np.random.default_rng(3)
    ref = np.where(random_mask(rng), 2, 0).astype(np.uint8)
    ref[random_mask(rng) & (ref > 0)] = 3
    pred = ref.copy()
    pred[:, :, :9] = 0
    # The reference is written in the 2020 scheme (enhancing 4), the prediction in 2023's (3).
    write_nifti(from_internal(ref, BRATS2020), BRATS_AFFINE, tmp_path / "ref.nii.gz")
    write_nifti(pred, BRATS_AFFINE, tmp_path / "pred.nii.gz")
    assert main(["metrics", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)  # stdout holds only the JSON
    expected = case_metrics(pred, ref, (1.0, 1.0, 1.0))
    for region in ("WT", "TC", "ET"):
        assert printed[region] == pytest.approx(expected[region])
    assert printed["ET"]["dice"] < 1.0


def test_metrics_cli_refuses_mismatched_grids(tmp_path, capsys):
    write_nifti(np.zeros((4, 4, 4), np.uint8), BRATS_AFFINE, tmp_path / "a.nii.gz")
    write_nifti(np.zeros((4, 4, 5), np.uint8), BRATS_AFFINE, tmp_path / "b.nii.gz")
    assert main(["metrics", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "differ from the reference" in err
