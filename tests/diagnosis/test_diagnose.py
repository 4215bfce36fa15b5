"""`neurotriage diagnose`: the whole chain, what it stores, and what it refuses.

The network is replaced by the `oracle` fixture (tests/conftest.py), which returns the synthetic
case's true labels: these tests check the chain around segmentation (locate, cross-check, referral,
report, database), so the outcome must not depend on a model's quality. The shipped model is
exercised in tests/segmentation/test_default_model.py and tests/test_demo.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from sqlalchemy import func, select

from neurotriage.cli import main
from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding, Study
from neurotriage.diagnosis import pipeline
from neurotriage.imaging.io import load_seg, write_nifti
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.segmentation.external import ExternalConfig
from neurotriage.segmentation.prediction import Prediction, whole_grid
from neurotriage.segmentation.probabilities import CLASSES, Probabilities


@pytest.fixture(scope="module")
def right_frontal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic enhancing tumour in the right frontal lobe."""
    root = tmp_path_factory.mktemp("cases")
    case = generate_case(11, "SYN_RF", kind="enhancing", lobe="frontal_lobe", hemisphere="right")
    return write_case(case, root, BRATS2020)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite database with the knowledge base and sample hospitals and doctors."""
    url = f"sqlite:///{tmp_path / 'nt.db'}"
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    assert main(["db", "init"]) == 0
    assert main(["db", "seed", "--sample"]) == 0
    return url


def new_patient(url: str, side: str) -> int:
    with db.transaction(url) as session:
        patient = intake.add_patient(session, "Test Patient", city="Leeds", lat="53.80", lon="-1.55")
        intake.add_symptom(session, patient.id, "hemiparesis", side=side)
        return patient.id


def counts(url: str) -> tuple[int, int]:
    with db.transaction(url) as session:
        return session.scalar(select(func.count(Finding.id))), session.scalar(select(func.count(Study.id)))


def run_json(args: list[str], capsys) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_concordant_case_stores_finding_and_writes_report(database, oracle, right_frontal, tmp_path, capsys):
    pid = new_patient(database, "left")
    out = tmp_path / "report"
    result = run_json(["diagnose", str(right_frontal), "--patient", str(pid), "--out", str(out), "--fhir"], capsys)
    assert result["locate"]["hemisphere"] == "right"
    assert result["locate"]["primary_region"] == "frontal_lobe"
    assert result["crosscheck"]["verdict"] == "concordant"
    assert result["referral"]["recommendations"], "ranked doctors expected"
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "report.json", "fhir_bundle.json", "SYN_RF_seg.nii.gz", "triplanar.png"} <= names
    html = (out / "report.html").read_text()
    assert "concordant" in html and "not a medical device" in html
    with db.transaction(database) as session:
        finding = session.get(Finding, result["finding_id"])
        assert finding.provenance["model_sha256"] == result["provenance"]["model_sha256"]
        assert len(finding.provenance["inputs"]) == 4
        post = {
            "min_component_ml": 0.5,
            "min_enhancing_ml": 1.0,
            "core_contact_mm": 2.0,
            "ring_growth_mm": 12.0,
            "enclosed_core_mm": 20.0,
        }
        assert finding.provenance["postprocess"] == post
        assert finding.provenance["tta"] is True
        assert all(len(i["sha256"]) == 64 for i in finding.provenance["inputs"])
        assert (finding.key, finding.report_dir) == (result["finding_key"], str(out))
        stored = finding.provenance
    report = json.loads((out / "report.json").read_text())
    assert report["provenance"] == stored  # field for field, tta and postprocess included
    assert report["finding_key"] == result["finding_key"]


@dataclass
class ReferenceModel:
    """Gives the case's reference labels as class probabilities: certain ones, or with `unsure` an even
    spread over the four labels wherever the reference has tumour."""

    name: str
    unsure: bool
    output_kind: str = CLASSES
    threshold: None = None

    def __post_init__(self) -> None:
        self.config = ExternalConfig(self.name, f"test:{self.name}", tta=False)
        self.sha256 = hashlib.sha256(self.name.encode()).hexdigest()

    def prediction(self, case, **_) -> Prediction:
        labels = load_seg(case.files.seg, case.files.naming)
        probabilities = (labels[None] == np.arange(4).reshape(4, 1, 1, 1)).astype(np.float32)
        if self.unsure:
            probabilities[:, labels > 0] = 0.25
        return Prediction(labels, whole_grid(case.shape), Probabilities(CLASSES, probabilities))


@pytest.mark.slow
def test_an_ensemble_is_named_in_provenance_and_its_uncertainty_reported(
    database, right_frontal, tmp_path, capsys, monkeypatch
):
    models = {name: ReferenceModel(name, unsure=name == "unsure") for name in ("sure", "unsure")}
    monkeypatch.setattr("neurotriage.segmentation.loader.load_any_model", lambda name: models[str(name)])
    pid = new_patient(database, "left")
    out = tmp_path / "report"
    args = ["diagnose", str(right_frontal), "--patient", str(pid), "--out", str(out), "--model", "sure"]
    result = run_json([*args, "--model", "unsure"], capsys)
    provenance = result["provenance"]
    assert provenance["model_id"] == "ensemble of 2: sure + unsure"
    assert [(m["model_id"], m["sha256"], m["origin"]) for m in provenance["models"]] == [
        (name, model.sha256, f"test:{name}") for name, model in models.items()
    ]
    report = json.loads((out / "report.json").read_text())
    assert (
        "SYN_RF_uncertainty.nii.gz" in report["files"] and report["uncertainty"]["map"] == "SYN_RF_uncertainty.nii.gz"
    )
    # Averaged, the tumour is 0.625 its own label and 0.125 each other one: uncertain (0.77), the rest certain.
    uncertainty = nib.load(out / "SYN_RF_uncertainty.nii.gz").get_fdata()
    tumour = np.asarray(nib.load(out / "SYN_RF_seg.nii.gz").dataobj) > 0
    assert np.allclose(uncertainty[tumour], 197 / 255) and not uncertainty[~tumour].any()
    volumes, uncertain = report["locate"]["volumes_ml"], report["uncertainty"]["ml"]
    assert uncertain["whole_tumour"] == pytest.approx(volumes["whole_tumour"], abs=0.01)
    assert volumes["tumour_core"] < uncertain["tumour_core"] <= volumes["whole_tumour"]  # oedema near the core
    html = (out / "report.html").read_text()
    assert "Ensemble member 2" in html and 'id="uncertain-volumes"' in html and "<strong>Uncertainty.</strong>" in html


@pytest.mark.slow
def test_each_diagnosis_keeps_its_own_report(database, oracle, right_frontal, capsys):
    pid = new_patient(database, "left")
    first = run_json(["diagnose", str(right_frontal), "--patient", str(pid)], capsys)
    second = run_json(["diagnose", str(right_frontal), "--patient", str(pid)], capsys)
    assert first["finding_key"] != second["finding_key"]
    for result in (first, second):
        folder = Path(result["report_dir"])
        assert folder.name == f"finding-{result['finding_key']}" and folder.parent.name == f"patient-{pid}"
        assert json.loads((folder / "report.json").read_text())["finding_key"] == result["finding_key"]


@pytest.mark.slow
def test_contradicting_symptom_side_is_flagged(database, oracle, right_frontal, tmp_path, capsys):
    pid = new_patient(database, "right")  # right weakness cannot come from a right frontal tumour
    out = tmp_path / "report"
    result = run_json(["diagnose", str(right_frontal), "--patient", str(pid), "--out", str(out)], capsys)
    assert result["crosscheck"]["verdict"] == "discordant"
    assert result["crosscheck"]["needs_review"] is True
    assert "Flagged for clinician review" in (out / "report.html").read_text()


def assert_refused(args: list[str], capsys, *needles: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_bad_inputs_write_nothing(database, oracle, right_frontal, tmp_path, capsys):
    pid = new_patient(database, "left")
    before = counts(database)
    out = tmp_path / "report"
    assert_refused(["diagnose", str(tmp_path / "missing"), "--patient", str(pid), "--out", str(out)], capsys, "missing")
    assert_refused(["diagnose", str(right_frontal), "--patient", "99999", "--out", str(out)], capsys, "99999")
    partial = shutil.copytree(right_frontal, tmp_path / "SYN_RF")
    (partial / "SYN_RF_t2.nii.gz").unlink()
    assert_refused(["diagnose", str(partial), "--patient", str(pid), "--out", str(out)], capsys, "missing T2")
    assert counts(database) == before
    assert not out.exists()


@pytest.mark.slow
def test_all_pending_records_failures_and_goes_on(database, oracle, tmp_path, capsys):
    # Two sample studies: one whose synthetic case is generated on first use, one whose case is gone.
    with db.transaction(database) as session:
        studies = session.scalars(select(Study).order_by(Study.id)).all()
        for study in studies[2:]:
            session.delete(study)
        studies[1].synthetic_seed = None  # no folder and no seed: cannot be found
    assert main(["diagnose", "--all-pending", "--json"]) == 1  # one failure -> non-zero, after the batch
    result = json.loads(capsys.readouterr().out)
    assert (result["done"], result["failed"]) == (1, 1)
    with db.transaction(database) as session:
        failed = session.get(Study, result["studies"][1]["study_id"])
        assert "case folder not found" in failed.last_error
    assert main(["diagnose", "--all-pending", "--json"]) == 1  # the failed one is still pending
    assert json.loads(capsys.readouterr().out)["done"] == 0


@contextmanager
def failing_commit(url=None):
    """A transaction that raises where it would commit once a finding was recorded in it, as a full
    disk or a lost connection would."""
    with db.transaction(url) as session:
        yield session
        if session.info.get("recorded"):
            raise OSError("disk I/O error (simulated at commit)")


def marking_record(session, *args, **kwargs):
    """`record`, marking its session for `failing_commit`."""
    session.info["recorded"] = True
    return RECORD(session, *args, **kwargs)


RECORD = pipeline.record


@pytest.mark.slow
def test_failed_commit_leaves_no_report_and_restores_the_earlier_one(
    database, oracle, right_frontal, tmp_path, capsys, monkeypatch
):
    pid = new_patient(database, "left")
    out = tmp_path / "report"
    first = run_json(["diagnose", str(right_frontal), "--patient", str(pid), "--out", str(out)], capsys)
    before = counts(database)
    monkeypatch.setattr(pipeline, "transaction", failing_commit)
    monkeypatch.setattr(pipeline, "record", marking_record)
    with pytest.raises(OSError, match="simulated at commit"):
        pipeline.diagnose(right_frontal, pid, pipeline.DiagnoseOptions(out_dir=out))
    assert counts(database) == before
    assert json.loads((out / "report.json").read_text())["finding_key"] == first["finding_key"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_region_names_are_data_not_format_strings(database, tmp_path, capsys):
    pid = new_patient(database, "left")
    doc = {"hemisphere": "right", "primary_region": "frontal_lobe {anterior}", "volumes_ml": {"whole_tumour": 5.0}}
    doc["regions"] = [{"name": "frontal_lobe", "side": "right", "ml": 5.0, "fraction_of_tumour": 1.0}]
    (tmp_path / "loc.json").write_text(json.dumps(doc))
    args = ["finding", "add", "--patient", str(pid), "--case", "C1", "--locate", str(tmp_path / "loc.json")]
    note = run_json(args, capsys)["referral"]["note"]
    assert "right frontal lobe {anterior}, finding " in note


@pytest.mark.slow
def test_relative_out_is_stored_as_an_absolute_folder(database, oracle, right_frontal, tmp_path, capsys, monkeypatch):
    pid = new_patient(database, "left")
    monkeypatch.chdir(tmp_path)
    result = run_json(["diagnose", str(right_frontal), "--patient", str(pid), "--out", "rel"], capsys)
    with db.transaction(database) as session:
        finding = session.get(Finding, result["finding_id"])
        assert finding.report_dir == str(tmp_path / "rel") and Path(finding.segmentation_path).is_absolute()


def test_an_implausible_image_is_refused_not_called_tumour_free(database, right_frontal, tmp_path, capsys):
    """One 3e38 voxel passes the loader's checks; the shipped model's gate refuses it before segmenting."""
    pid = new_patient(database, "left")
    before = counts(database)
    case = shutil.copytree(right_frontal, tmp_path / "SYN_RF")
    flair = case / "SYN_RF_flair.nii.gz"
    image = nib.load(flair)
    data = np.asanyarray(image.dataobj).astype(np.float32)
    data[tuple(np.argwhere(data != 0)[0])] = 3e38
    write_nifti(data, image.affine, flair)
    args = ["diagnose", str(case), "--patient", str(pid), "--json"]  # --json: no stage lines on stderr
    assert_refused(args, capsys, "SYN_RF_flair.nii.gz", "not MR magnitudes")
    assert counts(database) == before


def test_a_report_folder_holding_other_files_is_refused_before_segmenting(
    database, right_frontal, tmp_path, capsys, monkeypatch
):
    pid = new_patient(database, "left")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("the user's own file")

    def no_segmenting(*_args, **_kwargs):
        raise AssertionError("the folder must be refused before any segmentation")

    monkeypatch.setattr(pipeline, "analyse", no_segmenting)
    args = ["diagnose", str(right_frontal), "--patient", str(pid), "--out", str(taken), "--json"]
    assert_refused(args, capsys, "--out", "holds no report.json")
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]
