"""`ingest` round trip on synthetic raw studies (NIfTI and DICOM forms of the same 4 cases), timed cold.

Each study is ingested by the CLI in a fresh process (time and peak RSS include start-up and model
load), then scored against the truth `synth --raw` wrote: brain-mask Dice, landmark error, series
identification, and whole-tumour Dice of the shipped model on the ingested case next to its Dice on
the untouched BraTS-space case. The floor for the landmark error is measured too: the truth's own
BraTS-space T1, registered to the template the same way, moves the landmarks by this much.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from neurotriage.ingest.coregister import register_to_template
from neurotriage.ingest.evaluate import LPS, read_truth, score_ingest, tumour_scores
from neurotriage.ingest.grid import brats_image, template_image
from neurotriage.ingest.pipeline import IngestRecord
from neurotriage.segmentation.infer import load_model

N_CASES = 4
SEED = 1
TARGET_S = 45.0
TARGET_RSS_MB = 3072


def _synth(root: Path, dicom: bool) -> Path:
    out = root / ("dicom" if dicom else "nifti")
    flag = "--dicom" if dicom else "--raw"
    subprocess.run(
        [sys.executable, "-m", "neurotriage", "synth", str(out), "--n", str(N_CASES), "--seed", str(SEED), flag],
        check=True,
        capture_output=True,
    )
    return out


def _ingest_cold(study: Path, case_dir: Path) -> tuple[float, float, IngestRecord]:
    """Wall seconds and peak RSS (MB) of one `neurotriage ingest --json` process, and its record."""
    out_file, err_file = case_dir.parent / f"{case_dir.name}.out", case_dir.parent / f"{case_dir.name}.err"
    case_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(out_file, "wb") as out, open(err_file, "wb") as err:
        command = [sys.executable, "-m", "neurotriage", "ingest", str(study), "--out", str(case_dir), "--json"]
        proc = subprocess.Popen(command, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"ingest {study} failed: {err_file.read_text().strip()}")
    return wall, usage.ru_maxrss / 1024, IngestRecord.model_validate_json(out_file.read_bytes())


def _floor(truth_dir: Path) -> float:
    """Median landmark error of the truth's own BraTS-space T1 registered to the template (ideal: 0)."""
    truth = read_truth(truth_dir)
    t1 = np.asanyarray(nib.load(str(next(truth_dir.glob("*_t1.nii.gz")))).dataobj).astype(np.float32)
    found, _ = register_to_template(brats_image(t1), template_image())
    errors = []
    for mark in truth["landmarks"].values():
        point = np.array(mark["brats_mm"]) * LPS
        errors.append(float(np.linalg.norm(np.array(found.TransformPoint(tuple(point))) - point)))
    return float(np.median(errors))


def _form(root: Path, form: str, model) -> list[dict[str, Any]]:
    studies = _synth(root, dicom=form == "dicom")
    rows = []
    for study in sorted(p for p in studies.iterdir() if p.name != "truth"):
        wall, rss, record = _ingest_cold(study, root / "cases" / form / study.name)
        truth_dir = studies / "truth" / study.name
        scores = score_ingest(record, truth_dir)
        scores.tumour = tumour_scores(model, record.case_dir, truth_dir)
        row = {"form": form, "wall_s": round(wall, 1), "peak_rss_mb": round(rss), "timings_s": record.timings_s}
        row |= scores.model_dump(exclude={"landmark_error_mm"})
        if form == "nifti":
            row["floor_landmark_error_mm"] = round(_floor(truth_dir), 3)
        print(f"bench_ingest: {json.dumps(row)}", flush=True)
        rows.append(row)
    return rows


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    steps = {name: statistics.median(r["timings_s"][name] for r in rows) for name in rows[0]["timings_s"]}
    thin = [r for r in rows if r["thickest_slice_mm"] <= 3.0]
    thick = [r for r in rows if r["thickest_slice_mm"] > 3.0]
    return {
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "max_wall_s": max(r["wall_s"] for r in rows),
        "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
        "median_step_s": {k: round(v, 2) for k, v in steps.items()},
        "slowest_step": max(steps, key=steps.get),
        "min_mask_dice": min(r["mask_dice"] for r in rows),
        "median_landmark_error_mm": statistics.median(r["median_landmark_error_mm"] for r in rows),
        "median_floor_landmark_error_mm": statistics.median(
            r["floor_landmark_error_mm"] for r in rows if "floor_landmark_error_mm" in r
        ),
        "identified_right": sum(r["identified_right"] for r in rows),
        "cases": len(rows),
        "thin_series_wt_dice_drop": [
            round(r["tumour"]["wt_dice_direct"] - r["tumour"]["wt_dice_ingested"], 4) for r in thin
        ],
        "thin_series_wt_dice_drop_native": [
            round(r["tumour"]["wt_dice_native_direct"] - r["tumour"]["wt_dice_native_ingested"], 4) for r in thin
        ],
        "thick_series_wt_agreement": [r["tumour"]["wt_agreement"] for r in thick],
        "thick_series_wt_agreement_native": [r["tumour"]["wt_agreement_native"] for r in thick],
        "targets": {"wall_s": TARGET_S, "peak_rss_mb": TARGET_RSS_MB},
    }


def run() -> dict[str, Any]:
    """Ingest 4 synthetic studies as NIfTI and as DICOM, cold, and score each against its truth."""
    model = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for form in ("nifti", "dicom") for row in _form(Path(tmp), form, model)]
    return {"n_cases": N_CASES, "seed": SEED, "summary": _summary(rows), "cases": rows}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
