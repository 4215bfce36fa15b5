"""`neurotriage evaluate` (a model over labelled cases) and `neurotriage metrics` (two label files)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from neurotriage import NOTICE
from neurotriage.errors import UserError
from neurotriage.files import write_json_atomic
from neurotriage.imaging.io import discover_cases, load_case, read_nifti, same_grid
from neurotriage.imaging.naming import naming_from_values, to_internal
from neurotriage.segmentation.ensemble import Ensemble, members_of
from neurotriage.segmentation.figures import case_montage
from neurotriage.segmentation.infer import SegmentationModel
from neurotriage.segmentation.metrics import case_metrics, mean_metrics
from neurotriage.segmentation.postprocess import PostProcess


def _labels_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Internal labels and affine of a label NIfTI, its scheme read from its values (4 -> BraTS 2020)."""
    img, data = read_nifti(path)
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    if data.ndim != 3:
        raise UserError(f"{path}: expected a 3D label volume, got shape {tuple(data.shape)}")
    if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.round(data)):
        raise UserError(f"{path}: label volume has non-integer values")
    labels = np.asarray(data)
    return to_internal(labels, naming_from_values(labels), str(path)), img.affine


def compare_files(pred_path: Path, ref_path: Path) -> dict:
    """Metrics of a predicted label file against a reference one on the same grid (spacing from REF)."""
    pred, pred_affine = _labels_file(pred_path)
    ref, ref_affine = _labels_file(ref_path)
    if not same_grid(pred.shape, pred_affine, ref.shape, ref_affine):
        raise UserError(f"{pred_path}: grid {pred.shape} / affine differ from the reference {ref_path} {ref.shape}")
    spacing = tuple(float(s) for s in np.sqrt((ref_affine[:3, :3] ** 2).sum(axis=0)))
    return {**case_metrics(pred, ref, spacing), "notice": NOTICE}


def evaluate_dataset(
    model: SegmentationModel | Ensemble,
    data_dir: Path,
    out: Path,
    *,
    progress: bool = True,
    tta: bool | None = None,
    precision: str = "auto",
    post: PostProcess | None = None,
) -> dict:
    """Segment every labelled case (options as for `model.predict`), score it, draw its montage; write `out`
    (JSON) and return it."""
    tta = model.config.tta if tta is None else tta
    post = model.config.postprocess if post is None else post
    predict_options = {"tta": tta, "precision": precision, "post": post}
    cases = [c for c in discover_cases(data_dir) if c.seg is not None]
    if not cases:
        raise UserError(f"{data_dir}: no case has a segmentation file to evaluate against")
    montages = out.parent / "montages"
    per_case = {}
    for files in tqdm(cases, desc="evaluate", unit="case", disable=not progress):
        case = load_case(files)
        started = time.perf_counter()
        pred = model.predict(case, **predict_options)
        seconds = time.perf_counter() - started
        per_case[case.case_id] = {**case_metrics(pred, case.seg, case.spacing), "seconds": round(seconds, 3)}
        case_montage(case.images["flair"], case.seg, pred, case.affine, montages / f"{case.case_id}.png", case.case_id)
    result = {
        "notice": NOTICE,
        "model": " + ".join(str(member.source) for member in members_of(model)),
        "predict_options": {"tta": tta, "precision": precision, "post": post.to_dict()},
        "data_dir": str(data_dir),
        "n_cases": len(per_case),
        "mean": mean_metrics(list(per_case.values())),
        "cases": per_case,
        "montages": str(montages),
    }
    write_json_atomic(out, result)
    return result
