"""The issue's acceptance path, as a new user runs it: synth -> prepare -> train -> evaluate -> segment."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from neurotriage.cli import main


@pytest.mark.slow
def test_synthetic_cohort_to_aligned_segmentation(tmp_path, capsys):
    cohort, prepared, run = tmp_path / "cohort", tmp_path / "prepared", tmp_path / "run"
    assert main(["synth", str(cohort), "--n", "2", "--seed", "2"]) == 0
    assert main(["prepare", str(cohort), str(prepared)]) == 0
    train = ["train", str(prepared), "--out", str(run), "--width", "8", "--roi", "64", "--epochs", "3",
             "--batch-size", "1", "--lr", "3e-3", "--val-fraction", "0.5", "--workers", "0"]  # fmt: skip
    assert main(train) == 0
    epochs = json.loads((run / "history.json").read_text())["epochs"]
    assert epochs[-1]["val"]["loss"] < epochs[0]["val"]["loss"]
    assert epochs[-1]["train"]["loss"] < epochs[0]["train"]["loss"]

    metrics = tmp_path / "eval" / "metrics.json"
    case = cohort / "SYN_0000"  # evaluate accepts one case folder as well as a cohort
    assert main(["evaluate", str(case), "--model", str(run / "best.pt"), "--out", str(metrics)]) == 0
    result = json.loads(metrics.read_text())
    assert list(result["cases"]) == ["SYN_0000"] and set(result["mean"]) == {"WT", "TC", "ET", "classic"}
    assert (tmp_path / "eval" / "montages" / "SYN_0000.png").is_file()
    capsys.readouterr()

    # A cold CLI call, as a user types it; the result must open in other readers, aligned with the input.
    out = tmp_path / "seg.nii.gz"
    command = [sys.executable, "-m", "neurotriage", "segment", str(case), "--model", str(run), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    flair = next(case.glob("*_flair.nii.gz"))
    seg_itk, flair_itk = sitk.ReadImage(str(out)), sitk.ReadImage(str(flair))
    assert seg_itk.GetSize() == flair_itk.GetSize()
    assert np.allclose(seg_itk.GetDirection(), flair_itk.GetDirection())
    assert np.allclose(seg_itk.GetOrigin(), flair_itk.GetOrigin()) and seg_itk.GetSpacing() == flair_itk.GetSpacing()
    assert np.allclose(nib.load(out).affine, nib.load(flair).affine)
