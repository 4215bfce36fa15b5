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
from neurotriage.ingest.layout import BRAIN_MASK, INGEST_FOLDER, TEMPLATE_TRANSFORM
from neurotriage.ingest.pipeline import IngestRecord
from neurotriage.segmentation.metrics import overlap_scores, region_masks

LPS = np.array([-1.0, -1.0, 1.0])  # RAS <-> LPS: flip x and y
_SEQS = ("flair", "t1", "t1ce", "t2")


class TumourScores(BaseModel):
    """Whole-tumour Dice against the truth, on the untouched and on the ingested case, and between the two."""

    wt_dice_direct: float
    wt_dice_ingested: float
    wt_agreement: float


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
    return TumourScores(
        wt_dice_direct=_wt_dice(direct, truth_case.seg),
        wt_dice_ingested=_wt_dice(ingested, truth_case.seg),
        wt_agreement=_wt_dice(ingested, direct),
    )


def _wt_dice(labels: np.ndarray, reference: np.ndarray) -> float:
    return round(float(overlap_scores(region_masks(labels)["WT"], region_masks(reference)["WT"])["dice"]), 4)
