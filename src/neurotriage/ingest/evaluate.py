"""Scoring an ingested synthetic study against the truth `synth --raw` wrote beside it.

Brain-mask Dice, registration error at the truth's landmarks (mapped from BraTS space through the
saved template transform into scanner space), whether every sequence came from the right series,
and, given a segmentation model, the tumour Dice on the ingested case next to the Dice on the
untouched BraTS-space case and the agreement of the two predictions.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel

from neurotriage.imaging.io import load_case
from neurotriage.ingest.grid import brats_image
from neurotriage.ingest.layout import BRAIN_MASK, INGEST_FOLDER, TEMPLATE_TRANSFORM
from neurotriage.ingest.native import labels_on_grid, load_native
from neurotriage.ingest.pipeline import IngestRecord
from neurotriage.segmentation.metrics import overlap_scores, region_masks

LPS = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: flip x and y
_SEQS = ("flair", "t1", "t1ce", "t2")


class TumourScores(BaseModel):
    """Whole-tumour Dice against the truth, on the untouched and on the ingested case, and between the two.

    In BraTS space the ingested case's frame is where the template registration put it, which differs
    from the generator's frame by the template's own ambiguity (a few mm on these deformed brains),
    and Dice counts that offset as error. In the patient's own space (the native T1ce grid) both
    predictions and the truth are compared where the scanner saw them, through the truth's pose.
    """

    wt_dice_direct: float
    wt_dice_ingested: float
    wt_agreement: float
    wt_dice_native_direct: float
    wt_dice_native_ingested: float
    wt_agreement_native: float


class RoundTrip(BaseModel):
    """How close one ingested study came to the BraTS-space case it was made from."""

    case_id: str
    thickest_slice_mm: float
    mask_dice: float
    landmark_error_mm: dict[str, float]
    median_landmark_error_mm: float
    identified_right: bool
    tumour: TumourScores | None = None


def read_truth(truth_dir: Path) -> dict:
    """A raw study's truth.json."""
    return json.loads((Path(truth_dir) / "truth.json").read_text())


def score_ingest(record: IngestRecord, truth_dir: Path) -> RoundTrip:
    """Mask Dice, landmark errors and identification of an ingested case against its truth folder."""
    truth = read_truth(truth_dir)
    mask = np.asanyarray(nib.load(str(record.case_dir / INGEST_FOLDER / BRAIN_MASK)).dataobj) > 0
    true_mask = np.asanyarray(nib.load(str(Path(truth_dir) / truth["brain_mask"])).dataobj) > 0
    dice = 2.0 * np.count_nonzero(mask & true_mask) / (mask.sum() + true_mask.sum())
    errors = landmark_errors(record.case_dir / INGEST_FOLDER / TEMPLATE_TRANSFORM, truth)
    return RoundTrip(
        case_id=record.id,
        thickest_slice_mm=max(s["slice_thickness_mm"] for s in truth["series"].values() if s["sequence"] in _SEQS),
        mask_dice=round(float(dice), 4),
        landmark_error_mm=errors,
        median_landmark_error_mm=round(float(np.median(list(errors.values()))), 3),
        identified_right=identification_right(record, truth),
    )


def landmark_errors(transform_file: Path, truth: dict) -> dict[str, float]:
    """Distance (mm) between where the saved transform puts each truth landmark and where the truth has it."""
    transform = sitk.ReadTransform(str(transform_file))
    errors = {}
    for name, mark in truth["landmarks"].items():
        found = np.array(transform.TransformPoint(tuple(np.array(mark["brats_mm"]) * LPS))) * LPS
        errors[name] = round(float(np.linalg.norm(found - np.array(mark["scanner_mm"]))), 3)
    return errors


def identification_right(record: IngestRecord, truth: dict) -> bool:
    """Whether each sequence came from the series the truth made for it (by NIfTI file or DICOM folder name)."""
    expected = {}
    for filename, series in truth["series"].items():
        if series["sequence"] in _SEQS:
            expected[series["sequence"]] = series.get("dicom", filename) if record.kind == "dicom" else filename
    return all(record.sequences[seq].source.name == Path(name).name for seq, name in expected.items())


def tumour_scores(model, case_dir: Path, truth_dir: Path) -> TumourScores:
    """Predict on the ingested and on the untouched case with `model` (a `SegmentationModel`) and compare."""
    ingested = model.predict(load_case(case_dir, with_seg=False))
    truth_case = load_case(truth_dir)
    direct = model.predict(truth_case)
    native = load_native(case_dir)
    by_pose = _truth_to_native(read_truth(truth_dir))
    truth_native = _through(truth_case.seg, native.grid, by_pose)
    direct_native = _through(direct, native.grid, by_pose)
    ingested_native = labels_on_grid(ingested, native)
    return TumourScores(
        wt_dice_direct=_wt_dice(direct, truth_case.seg),
        wt_dice_ingested=_wt_dice(ingested, truth_case.seg),
        wt_agreement=_wt_dice(ingested, direct),
        wt_dice_native_direct=_wt_dice(direct_native, truth_native),
        wt_dice_native_ingested=_wt_dice(ingested_native, truth_native),
        wt_agreement_native=_wt_dice(ingested_native, direct_native),
    )


def _truth_to_native(truth: dict) -> sitk.AffineTransform:
    """The truth's pose as a transform from a native (scanner, LPS) point to the generator's BraTS point."""
    flip = np.diag(LPS)
    scanner_from_brats = flip @ np.array(truth["pose"]["brats_to_scanner"])[:3, :3] @ flip
    offset = flip @ np.array(truth["pose"]["brats_to_scanner"])[:3, 3]
    inverse = np.linalg.inv(scanner_from_brats)
    return sitk.AffineTransform(inverse.ravel().tolist(), (-inverse @ offset).tolist())


def _through(labels: np.ndarray, grid: sitk.Image, transform: sitk.Transform) -> np.ndarray:
    resampled = sitk.Resample(brats_image(labels.astype(np.uint8)), grid, transform, sitk.sitkNearestNeighbor)
    return sitk.GetArrayFromImage(resampled)


def _wt_dice(labels: np.ndarray, reference: np.ndarray) -> float:
    return round(float(overlap_scores(region_masks(labels)["WT"], region_masks(reference)["WT"])["dice"]), 4)
