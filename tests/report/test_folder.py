"""The report folder: its contents, and that a failure leaves nothing half-written."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from neurotriage import NOTICE
from neurotriage.errors import UserError
from neurotriage.imaging.io import load_seg
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.report import html
from neurotriage.report.folder import write_report


def _boom(*_args, **_kwargs):
    raise RuntimeError("disk full (simulated)")


def test_writes_every_file(make_input, tmp_path):
    report = make_input("left", verdict="discordant")
    out = write_report(tmp_path / "reports" / "C1", report, fhir=True)
    names = {p.name for p in out.iterdir()}
    assert names == {
        "report.html",
        "report.json",
        "triplanar.png",
        "montage.png",
        "regions.png",
        "uncertainty.png",
        "C1_seg.nii.gz",
        "C1_uncertainty.nii.gz",
        "fhir_bundle.json",
    }
    data = json.loads((out / "report.json").read_text())
    assert data["notice"] == NOTICE and data["case_id"] == "C1"
    assert data["crosscheck"]["verdict"] == "discordant"
    assert data["locate"]["regions"][0]["ml"] == pytest.approx(0.71)  # numpy scalars became plain JSON
    assert set(data["files"]) == names - {"report.json"}
    # The segmentation is written back in the case's own label scheme (BraTS 2020: enhancing = 4).
    seg = load_seg(out / "C1_seg.nii.gz", BRATS2020, expect_shape=report.imaging.seg.shape, expect_affine=BRATS_AFFINE)
    assert np.array_equal(seg, report.imaging.seg)
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_the_uncertainty_map_is_kept_as_nifti_and_measured_in_report_json(make_input, tmp_path):
    report = make_input("left")
    out = write_report(tmp_path / "C1", report)
    stored = nib.load(out / "C1_uncertainty.nii.gz")
    assert np.allclose(stored.affine, BRATS_AFFINE) and stored.get_data_dtype() == np.uint8
    # Readers get the normalised entropy (0 to 1): the stored steps times the header's scale.
    np.testing.assert_allclose(stored.get_fdata(), report.imaging.uncertainty / 255.0, atol=1e-6)
    data = json.loads((out / "report.json").read_text())
    assert "C1_uncertainty.nii.gz" in data["files"]
    uncertainty = data["uncertainty"]
    assert uncertainty["map"] == "C1_uncertainty.nii.gz"
    assert (uncertainty["threshold"], uncertainty["near_mm"]) == (0.5, 5.0)
    assert set(uncertainty["ml"]) == set(data["locate"]["volumes_ml"])  # one beside each compartment's volume
    assert uncertainty["ml"]["whole_tumour"] > 0 and "entropy" in uncertainty["measure"]


def test_failure_mid_write_leaves_nothing(make_input, tmp_path, monkeypatch):
    monkeypatch.setattr(html, "render_html", _boom)
    with pytest.raises(RuntimeError, match="simulated"):
        write_report(tmp_path / "C1", make_input("left"))
    assert list(tmp_path.iterdir()) == []  # neither the report nor its temporary folder


def test_failed_rewrite_keeps_the_previous_report(make_input, tmp_path, monkeypatch):
    out = write_report(tmp_path / "C1", make_input("left", verdict="concordant"), fhir=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(html, "render_html", _boom)
    with pytest.raises(RuntimeError):
        write_report(out, make_input("left", verdict="discordant"))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["C1"]
    monkeypatch.undo()
    write_report(out, make_input("left", verdict="discordant"))
    assert json.loads((out / "report.json").read_text())["crosscheck"]["verdict"] == "discordant"


def test_refuses_to_replace_a_folder_that_is_not_a_report(make_input, tmp_path):
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(UserError, match="not empty") as refused:
        write_report(precious, make_input("left"))
    assert refused.value.field == "out" and "--" not in refused.value.message
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(UserError, match="exists and is not a folder") as refused:
        write_report(tmp_path / "a-file", make_input("left"))
    assert refused.value.field == "out" and "--" not in refused.value.message


def test_healthy_scan_report(make_input, tmp_path):
    out = write_report(tmp_path / "H", make_input(None, verdict="no tumour found despite focal symptoms"))
    assert "No tumour found" in (out / "report.html").read_text()
    assert (out / "triplanar.png").stat().st_size > 0
