"""Series identification on the scanner-like studies `synth --raw` and `--dicom` write: right on every one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurotriage.cli import main
from neurotriage.ingest.dicom import read_dicom_folder, study_patient
from neurotriage.ingest.identify import identify
from neurotriage.ingest.series import read_nifti_folder


@pytest.mark.slow
def test_every_synthetic_raw_study_is_identified_as_its_truth_says(tmp_path: Path) -> None:
    # Seed 2's first three studies: 3 mm named series without sidecars, then 1 mm studies with sidecars.
    assert main(["synth", str(tmp_path), "--n", "3", "--seed", "2", "--raw"]) == 0
    studies = sorted(p for p in tmp_path.iterdir() if p.name != "truth")
    assert len(studies) == 3
    for study in studies:
        truth = json.loads((tmp_path / "truth" / study.name / "truth.json").read_text())
        expected = {s["sequence"]: name for name, s in truth["series"].items() if s["sequence"] != "localiser"}
        found = identify(read_nifti_folder(study), None)
        assert {seq: Path(choice.source).name for seq, choice in found.sequences.items()} == expected, study.name
        assert [Path(s.source).name for s in found.skipped] == [
            name for name, s in truth["series"].items() if s["sequence"] == "localiser"
        ]


@pytest.mark.slow
def test_every_synthetic_dicom_study_is_identified_and_names_its_patient(tmp_path: Path) -> None:
    assert main(["synth", str(tmp_path), "--n", "2", "--seed", "2", "--dicom"]) == 0
    for study in sorted(p for p in tmp_path.iterdir() if p.name != "truth"):
        truth = json.loads((tmp_path / "truth" / study.name / "truth.json").read_text())
        expected = {s["sequence"]: s["dicom"] for s in truth["series"].values() if s["sequence"] != "localiser"}
        found = identify(read_dicom_folder(study), None)
        chosen = {seq: str(Path(choice.source).relative_to(study)) for seq, choice in found.sequences.items()}
        assert chosen == expected, study.name
        assert study_patient(study).patient_id == truth["dicom"]["patient_id"]
