"""BraTS region metrics (WT/TC/ET) and the classic per-label scores, on internal label maps.

Conventions (checked against MONAI in the tests):
- Dice and IoU are global over the case (not lesion-wise).
- HD95 is in mm from the voxel spacing: the larger of the two directed 95th-percentile surface
  distances, as MONAI's `compute_hausdorff_distance(percentile=95)` computes it.
- Both masks empty: Dice 1, IoU 1, HD95 null. One empty: Dice 0, IoU 0, HD95 null.
- Sensitivity is null when the reference region is empty; specificity when it fills the volume.
"""

from __future__ import annotations

import warnings

import numpy as np

from neurotriage.imaging.labels import LABEL_NAMES, TUMOUR_REGIONS

REGIONS = tuple(TUMOUR_REGIONS)
SCORES = ("dice", "iou", "hd95", "sensitivity", "specificity")


def region_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Internal labels -> boolean WT, TC, ET masks."""
    return {name: np.isin(labels, values) for name, values in TUMOUR_REGIONS.items()}


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float | None:
    """95th-percentile symmetric Hausdorff distance in mm (MONAI convention); None if a mask is empty."""
    if not pred.any() or not ref.any():
        return None
    from monai.metrics import compute_hausdorff_distance  # MONAI: only for distances (start-up time)

    with warnings.catch_warnings():  # MONAI 1.6 warns about its own internal use of a deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_hausdorff_distance(
            pred[None, None], ref[None, None], include_background=True, percentile=95, spacing=list(spacing)
        )
    return float(value.item())


def overlap_scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """Global Dice, IoU, sensitivity and specificity of a boolean prediction against its reference."""
    tp = int(np.count_nonzero(pred & ref))
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    fp, fn = n_pred - tp, n_ref - tp
    tn = pred.size - tp - fp - fn
    both_empty = n_pred == 0 and n_ref == 0
    return {
        "dice": 1.0 if both_empty else 2 * tp / (n_pred + n_ref),
        "iou": 1.0 if both_empty else tp / (tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
    }


def binary_scores(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float | None]:
    """Dice, IoU, HD95, sensitivity and specificity of one boolean prediction against its reference."""
    scores = overlap_scores(pred, ref)
    return {"dice": scores["dice"], "iou": scores["iou"], "hd95": hd95(pred, ref, spacing), **scores}


def classic_scores(pred: np.ndarray, ref: np.ndarray) -> dict:
    """Per-label IoU (null for a label absent from both), their mean, and voxel accuracy."""
    per_label = {}
    for label, name in LABEL_NAMES.items():
        p, r = pred == label, ref == label
        per_label[name] = _ratio(int(np.count_nonzero(p & r)), int(np.count_nonzero(p | r)))
    present = [v for v in per_label.values() if v is not None]
    return {
        "iou_per_label": per_label,
        "mean_iou": float(np.mean(present)) if present else None,
        "accuracy": float(np.count_nonzero(pred == ref)) / pred.size,
    }


def case_metrics(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict:
    """All metrics of one case: {'WT': {...}, 'TC': {...}, 'ET': {...}, 'classic': {...}}."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction {pred.shape} and reference {ref.shape} differ in shape")
    pred_masks, ref_masks = region_masks(pred), region_masks(ref)
    out: dict = {name: binary_scores(pred_masks[name], ref_masks[name], spacing) for name in REGIONS}
    out["classic"] = classic_scores(pred, ref)
    return out


def _mean(values: list) -> dict:
    kept = [v for v in values if v is not None]
    return {"mean": float(np.mean(kept)) if kept else None, "n": len(kept)}


def mean_metrics(cases: list[dict]) -> dict:
    """Mean of each score over cases; nulls (e.g. HD95 with an empty mask) are left out and counted."""
    out: dict = {}
    for region in REGIONS:
        out[region] = {score: _mean([c[region][score] for c in cases]) for score in SCORES}
    out["classic"] = {
        "mean_iou": _mean([c["classic"]["mean_iou"] for c in cases]),
        "accuracy": _mean([c["classic"]["accuracy"] for c in cases]),
    }
    return out
