"""Shared ingest fixtures: one synthetic raw DICOM study, written once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurotriage.cli import main

SYNTH_SEED = 1
SYNTH_CASE = "SYN_0000"


@pytest.fixture(scope="session")
def synth_dicom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`synth OUT --n 1 --seed 1 --dicom`: OUT/SYN_0000/dicom/<SeriesNumber>/ and its truth in OUT/truth/."""
    out = tmp_path_factory.mktemp("synth_dicom")
    assert main(["synth", str(out), "--n", "1", "--seed", str(SYNTH_SEED), "--dicom"]) == 0
    return out
