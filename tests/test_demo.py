"""`neurotriage demo` (what `make demo` runs): the whole product on embedded defaults."""

from __future__ import annotations

import json

import pytest

from neurotriage.cli import main


@pytest.mark.slow
def test_demo_diagnoses_both_patients_with_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Report:" in printed and "not a medical device" in printed
    reports = sorted(out.glob("reports/patient-*/report.json"))
    assert len(reports) == 2
    verdicts = [json.loads(r.read_text())["crosscheck"]["verdict"] for r in reports]
    # The shipped model must find the right frontal tumour: left weakness fits it, right weakness does not.
    assert verdicts == ["concordant", "discordant"], verdicts
    assert (reports[0].parent / "fhir_bundle.json").is_file()


def test_demo_refuses_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("user data")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "not a neurotriage demo folder" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "user data"
