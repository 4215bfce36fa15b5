"""`neurotriage ingest` and `diagnose` on one synthetic raw DICOM study, scored against the truth it came from."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from sqlalchemy import select

from neurotriage.cli import main
from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Study
from neurotriage.imaging.naming import BRATS2020, to_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_volume import load_dicom_volume
from neurotriage.ingest.evaluate import score_ingest
from neurotriage.ingest.pipeline import IngestRecord

from .conftest import SYNTH_CASE

pytestmark = pytest.mark.slow
SEQUENCES = ("flair", "t1", "t1ce", "t2")
RECORD_KEYS = {"id", "case_dir", "sequences", "skipped", "patient", "study_date", "timings_s", "qc"}


@pytest.fixture(scope="module")
def ingested(synth_dicom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The study ingested once through the CLI with --json: (case folder, printed ingest.json)."""
    case_dir = tmp_path_factory.mktemp("ingested") / "CASE_A"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["ingest", str(synth_dicom_root / SYNTH_CASE), "--out", str(case_dir), "--json"])
    assert code == 0
    return case_dir, json.loads(printed.getvalue())


def test_writes_the_brats_layout_on_the_sri24_grid(ingested: tuple[Path, dict]) -> None:
    case_dir, _ = ingested
    for seq in SEQUENCES:
        image = nib.load(str(case_dir / f"CASE_A_{seq}.nii.gz"))
        assert image.shape == GRID_SHAPE
        assert np.array_equal(image.header.get_sform(), BRATS_AFFINE)
        assert np.array_equal(image.header.get_qform(), BRATS_AFFINE)
        data = np.asanyarray(image.dataobj)
        mask = np.asanyarray(nib.load(str(case_dir / "ingest" / "brain_mask.nii.gz")).dataobj) > 0
        assert not data[~mask].any(), f"{seq}: non-zero outside the brain"
    names = {p.name for p in (case_dir / "ingest").iterdir()}
    assert {"ingest.json", "qc.png", "brain_mask.nii.gz", "brats_to_t1ce.tfm", "t1_to_t1ce.tfm"} <= names


def test_record_has_the_documented_keys_and_the_patient(ingested: tuple[Path, dict], synth_dicom_root: Path) -> None:
    case_dir, printed = ingested
    assert set(printed) >= RECORD_KEYS
    assert printed == json.loads((case_dir / "ingest" / "ingest.json").read_text())
    truth = json.loads((synth_dicom_root / "truth" / SYNTH_CASE / "truth.json").read_text())["dicom"]
    assert printed["patient"]["patient_id"] == truth["patient_id"]
    assert printed["patient"]["patient_name"] == truth["patient_name"]
    assert printed["qc"]["verdict"] == "pass"
    assert any("localiser" in s["reason"] for s in printed["skipped"])
    assert set(printed["timings_s"]) >= {"co-register", "skull strip", "register to template"}


def test_round_trip_against_the_truth(ingested: tuple[Path, dict], synth_dicom_root: Path) -> None:
    _, printed = ingested
    scores = score_ingest(IngestRecord.model_validate(printed), synth_dicom_root / "truth" / SYNTH_CASE)
    assert scores.identified_right
    assert scores.mask_dice >= 0.95
    # make bench measures the 4-case median against its 2 mm aim; one case may sit a little above it.
    assert scores.median_landmark_error_mm <= 2.5


def test_diagnose_a_raw_study_writes_native_nifti_and_dicom_seg(
    synth_dicom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    truth = json.loads((synth_dicom_root / "truth" / SYNTH_CASE / "truth.json").read_text())["dicom"]
    family, given = truth["patient_name"].split("^")
    born = truth["patient_birth_date"]
    assert main(["db", "init"]) == 0
    name = f"{given.title()} {family.title()}"
    assert main(["patient", "add", "--name", name, "--birth-date", f"{born[:4]}-{born[4:6]}-{born[6:]}"]) == 0
    report = tmp_path / "report"
    assert main(["diagnose", str(synth_dicom_root / SYNTH_CASE), "--patient", "1", "--out", str(report), "--json"]) == 0
    native = nib.load(str(report / "native" / f"{SYNTH_CASE}_seg_native.nii.gz"))
    t1ce = nib.load(str(tmp_path / "home" / "cases" / SYNTH_CASE / "ingest" / "t1ce_native.nii.gz"))
    assert native.shape == t1ce.shape and np.allclose(native.affine, t1ce.affine)
    assert np.asanyarray(native.dataobj).any()
    seg = hd.seg.segread(report / "native" / f"{SYNTH_CASE}_seg.dcm")
    source = pydicom.dcmread(next((tmp_path / "home" / "cases" / SYNTH_CASE / "ingest" / "t1ce_dicom").iterdir()))
    assert seg.PatientID == truth["patient_id"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    _seg_matches_the_native_nifti(seg, tmp_path / "home" / "cases" / SYNTH_CASE / "ingest" / "t1ce_dicom", native)
    saved = json.loads((report / "report.json").read_text())
    assert "native/" + f"{SYNTH_CASE}_seg.dcm" in saved["files"]
    assert saved["provenance"]["raw_study"] == str((synth_dicom_root / SYNTH_CASE).resolve())
    # The study is dated by its DICOM StudyDate (the follow-up plot's time axis).
    with transaction(f"sqlite:///{tmp_path / 'db.sqlite'}") as session:
        dated = session.scalar(select(Study.study_date))
    assert dated is not None and dated.strftime("%Y%m%d") == source.StudyDate


def test_failed_quality_gate_leaves_nothing_but_its_figure(
    synth_dicom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from neurotriage.ingest import skullstrip

    def cube(t1_ras: np.ndarray) -> np.ndarray:  # a 40 ml "brain": what a failed skull strip might give
        mask = np.zeros(t1_ras.shape, bool)
        centre = np.array(t1_ras.shape) // 2
        mask[tuple(slice(c - 17, c + 17) for c in centre)] = True
        return mask

    monkeypatch.setattr(skullstrip, "brain_mask", cube)
    case_dir = tmp_path / "CASE_Q"
    capsys.readouterr()
    assert main(["ingest", str(synth_dicom_root / SYNTH_CASE), "--out", str(case_dir)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "quality gate failed" in errors[0] and "brain volume" in errors[0]
    assert not case_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CASE_Q_ingest_qc_failed.png"]


def _seg_matches_the_native_nifti(seg: hd.seg.Segmentation, t1ce_dicom: Path, native: nib.Nifti1Image) -> None:
    """The DICOM SEG, read back slice by source slice, is the native-space NIfTI's labels voxel for voxel."""
    (series,) = scan_dicom_folder(t1ce_dicom).series
    volume = load_dicom_volume(series)
    sources = [str(pydicom.dcmread(frame.path, stop_before_pixels=True).SOPInstanceUID) for frame in volume.frames]
    # Segment numbers follow the internal labels (1 necrosis, 2 oedema, 3 enhancing), as the SEG writer numbers them.
    from_seg = seg.get_pixels_by_source_instance(
        sources, combine_segments=True, assert_missing_frames_are_empty=True, skip_overlap_checks=True
    )
    labels = to_internal(np.asanyarray(native.dataobj), BRATS2020, "native seg")  # (x, y, z) on the T1ce grid
    assert from_seg.shape == labels.T.shape  # (z, y, x): one frame per source slice
    assert np.array_equal(from_seg, labels.T)
