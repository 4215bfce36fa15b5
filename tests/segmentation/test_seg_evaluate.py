"""`evaluate`: per-case and mean metrics in JSON, and a montage per case."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from neurotriage import NOTICE
from neurotriage.cli import main
from neurotriage.imaging.io import load_case
from neurotriage.segmentation.infer import load_model
from neurotriage.segmentation.metrics import case_metrics


def test_evaluate_writes_metrics_and_montages(tiny_cohort, tiny_run, tmp_path, capsys):
    out = tmp_path / "eval" / "metrics.json"
    assert main(["evaluate", str(tiny_cohort), "--model", str(tiny_run), "--out", str(out)]) == 0
    assert "mean over 4 cases" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["notice"] == NOTICE and result["n_cases"] == 4
    case = load_case(tiny_cohort / "TINY_001")
    expected = case_metrics(load_model(tiny_run).predict(case), case.seg, case.spacing)
    got = result["cases"]["TINY_001"]
    for region in ("WT", "TC", "ET"):
        assert got[region] == pytest.approx(expected[region])
    dice = [c["WT"]["dice"] for c in result["cases"].values()]
    assert result["mean"]["WT"]["dice"] == {"mean": pytest.approx(np.mean(dice)), "n": 4}
    montages = sorted((tmp_path / "eval" / "montages").iterdir())
    assert [p.name for p in montages] == [f"TINY_00{i}.png" for i in range(4)]
    assert montages[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_needs_labelled_cases(tiny_cohort, tiny_run, tmp_path, capsys):
    folder = tmp_path / "unlabelled" / "TINY_000"
    folder.mkdir(parents=True)
    for src in (tiny_cohort / "TINY_000").iterdir():
        if "seg" not in src.name:
            nib.save(nib.load(src), folder / src.name)
    assert main(["evaluate", str(folder.parent), "--model", str(tiny_run), "--out", str(tmp_path / "m.json")]) == 2
    assert "no case has a segmentation file" in capsys.readouterr().err
