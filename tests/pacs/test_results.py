"""The measurement report (SR) and summary page (SC) for the PACS, from a synthetic DICOM study's T1ce: read back with
highdicom (volumes, codes, segment references, flags when preliminary and final, the source study), the report
folder listing them, refusals, and dciodvfy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from neurotriage.ingest.native import write_native_dicom_seg
from neurotriage.pacs.results import (
    NOTICE,
    SR_SERIES_DESCRIPTION,
    Verifier,
    read_sr_volumes,
    write_result_objects,
)
from neurotriage.report.folder import write_report
from neurotriage.report.inputs import ReportInput

from .conftest import CROSSCHECK, LOCATE, VOLUMES

pytestmark = pytest.mark.slow  # one synthetic study and its SEG, shared by the module: about 20 s
VERIFIER = Verifier(name="Doe^Jane", organisation="Imaginary General")
RED_BANNER = (0xC0, 0x00, 0x00)


@pytest.fixture(scope="module")
def seg(report: ReportInput, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_native_dicom_seg(report.imaging.native, tmp_path_factory.mktemp("seg") / "C1_seg.dcm")


@pytest.fixture(scope="module")
def preliminary(report: ReportInput, seg: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("preliminary")
    started = time.perf_counter()
    paths = write_result_objects(report, out, seg=seg)
    print(f"write_result_objects: {time.perf_counter() - started:.2f} s")
    return paths


@pytest.fixture(scope="module")
def final(report: ReportInput, seg: Path, preliminary: list[Path], tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("final")
    return write_result_objects(report, out, seg=seg, preliminary=False, verifier=VERIFIER, replaces=preliminary[0])


def source_headers(report: ReportInput) -> list[pydicom.Dataset]:
    folder = report.imaging.native.dicom_folder
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(folder.iterdir())]


def text_items(sr: hd.sr.Comprehensive3DSR) -> list[tuple[str, str]]:
    (container,) = [i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375"]
    return [(item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue) for item in container.ContentSequence]


def test_writes_the_two_objects_and_nothing_else(preliminary: list[Path]) -> None:
    assert [p.name for p in preliminary] == ["C1_sr.dcm", "C1_summary.dcm"]
    assert sorted(preliminary[0].parent.iterdir()) == preliminary


def test_sr_holds_the_volumes_with_their_codes(preliminary: list[Path]) -> None:
    assert read_sr_volumes(preliminary[0]) == pytest.approx(VOLUMES, rel=1e-9)
    content = hd.sr.srread(preliminary[0]).content
    for group in [*content.get_image_measurement_groups(), *content.get_volumetric_roi_measurement_groups()]:
        (volume,) = group.get_measurements(name=codes.SCT.Volume)
        assert (volume.unit.value, volume.unit.scheme_designator) == ("ml", "UCUM")
        assert volume.method == codes.DCM.SumOfSegmentedVoxelMethodForVolume
        (site,) = group.finding_sites
        assert site.value == hd.sr.CodedConcept("78277001", "SCT", "Temporal lobe")
        assert site.laterality == hd.sr.CodedConcept("24028007", "SCT", "Right")
    unions = {group.tracking_identifier: group.finding_type for group in content.get_image_measurement_groups()}
    assert unions == {"whole tumour": codes.SCT.Neoplasm, "tumour core": codes.SCT.Neoplasm}


def test_segment_volumes_reference_the_seg_segments(preliminary: list[Path], seg: Path, report: ReportInput) -> None:
    segmentation = hd.seg.segread(seg)
    by_type = {segmentation.get_segment_description(n).segmented_property_type: n for n in segmentation.segment_numbers}
    groups = hd.sr.srread(preliminary[0]).content.get_volumetric_roi_measurement_groups()
    assert {g.tracking_identifier for g in groups} == {"enhancing tumour", "necrosis / non-enhancing core", "edema"}
    series_uid = source_headers(report)[0].SeriesInstanceUID
    for group in groups:
        segment = group.referenced_segment
        assert segment.referenced_sop_instance_uid == segmentation.SOPInstanceUID
        assert segment.referenced_sop_class_uid == segmentation.SOPClassUID
        assert segment.referenced_segment_numbers == [by_type[group.finding_type]]
        assert segment.source_series_for_segmentation.value == series_uid
    assert {g.finding_type for g in groups} == {codes.SCT.Necrosis, codes.SCT.Edema, codes.cid7151.EnhancingLesion}


def test_sr_says_where_and_what_the_cross_check_found(preliminary: list[Path]) -> None:
    texts = text_items(hd.sr.srread(preliminary[0]))
    assert ("Finding", "Location: right temporal lobe") in texts
    assert ("Finding", "Crosses the midline: no") in texts
    assert ("Conclusion", "Symptom cross-check: discordant") in texts
    assert ("Summary", CROSSCHECK["summary"]) in texts and ("Summary", LOCATE["summary"]) in texts
    assert ("Comment", NOTICE) in texts and ("Comment", "PRELIMINARY: not signed off by a clinician") in texts


def test_sr_joins_the_source_study_and_cites_the_series(preliminary: list[Path], seg: Path, report: ReportInput):
    sr = hd.sr.srread(preliminary[0])
    sources = source_headers(report)
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientBirthDate", "AccessionNumber"):
        assert sr[keyword].value == sources[0][keyword].value, keyword
    assert sr.SeriesInstanceUID not in {sources[0].SeriesInstanceUID, pydicom.dcmread(seg).SeriesInstanceUID}
    assert sr.SeriesDescription == SR_SERIES_DESCRIPTION
    cited = {
        series.SeriesInstanceUID: {item.ReferencedSOPInstanceUID for item in series.ReferencedSOPSequence}
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
    }
    assert cited[sources[0].SeriesInstanceUID] == {ds.SOPInstanceUID for ds in sources}
    assert cited[pydicom.dcmread(seg).SeriesInstanceUID] == {pydicom.dcmread(seg).SOPInstanceUID}


def test_preliminary_sr_is_partial_and_unverified(preliminary: list[Path]) -> None:
    sr = hd.sr.srread(preliminary[0])
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("PARTIAL", "UNVERIFIED", "PRELIMINARY")
    assert "VerifyingObserverSequence" not in sr and "PredecessorDocumentsSequence" not in sr


def test_final_sr_is_verified_and_replaces_the_preliminary(final: list[Path], preliminary: list[Path]) -> None:
    sr = hd.sr.srread(final[0])
    assert (sr.CompletionFlag, sr.VerificationFlag, sr.PreliminaryFlag) == ("COMPLETE", "VERIFIED", "FINAL")
    (observer,) = sr.VerifyingObserverSequence
    assert (observer.VerifyingObserverName, observer.VerifyingOrganization) == ("Doe^Jane", "Imaginary General")
    replaced = pydicom.dcmread(preliminary[0])
    (study,) = sr.PredecessorDocumentsSequence
    assert study.StudyInstanceUID == replaced.StudyInstanceUID
    (series,) = study.ReferencedSeriesSequence
    assert [i.ReferencedSOPInstanceUID for i in series.ReferencedSOPSequence] == [replaced.SOPInstanceUID]
    assert ("Comment", "Signed off by a clinician") in text_items(sr)
    assert read_sr_volumes(final[0]) == pytest.approx(VOLUMES, rel=1e-9)


def test_summary_page_is_a_visible_page_in_the_study(preliminary: list[Path], final: list[Path], report: ReportInput):
    source = source_headers(report)[0]
    pages = {}
    for name, path in (("preliminary", preliminary[1]), ("final", final[1])):
        page = pydicom.dcmread(path)
        assert page.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert (page.StudyInstanceUID, page.PatientID) == (source.StudyInstanceUID, source.PatientID)
        assert page.SeriesInstanceUID != source.SeriesInstanceUID and NOTICE in page.ImageComments
        pages[name] = page.pixel_array
        assert pages[name].ndim == 3 and pages[name].shape[2] == 3 and pages[name].std() > 20
    banner = {name: int(np.all(pixels == RED_BANNER, axis=-1).sum()) for name, pixels in pages.items()}
    assert banner["preliminary"] > 10_000 and banner["final"] == 0


def test_report_folder_lists_the_objects_and_their_volumes_match(report: ReportInput, tmp_path: Path) -> None:
    out = write_report(tmp_path / "report", report)
    saved = json.loads((out / "report.json").read_text())
    assert {"native/C1_seg.dcm", "native/C1_sr.dcm", "native/C1_summary.dcm"} <= set(saved["files"])
    assert read_sr_volumes(out / "native" / "C1_sr.dcm") == pytest.approx(saved["locate"]["volumes_ml"], rel=1e-9)
    assert pydicom.dcmread(out / "native" / "C1_sr.dcm").CompletionFlag == "PARTIAL"


def test_sign_off_must_match_the_status(report: ReportInput, seg: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="verified"):
        write_result_objects(report, tmp_path, seg=seg, preliminary=False)
    with pytest.raises(ValueError, match="verified"):
        write_result_objects(report, tmp_path, seg=seg, verifier=VERIFIER)
    without_dicom = report.model_copy(update={"imaging": None})
    with pytest.raises(ValueError, match="DICOM"):
        write_result_objects(without_dicom, tmp_path)
    assert not list(tmp_path.iterdir())


def test_dciodvfy_finds_no_error(preliminary: list[Path], final: list[Path]) -> None:
    if shutil.which("dciodvfy") is None:
        missing = "dciodvfy (Debian's dicom3tools) is not installed"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {missing}")
        pytest.skip(missing)
    for path, kind in zip([*preliminary, *final], ["Comprehensive3DSR", "SCImage"] * 2, strict=True):
        checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
        output = checked.stdout + checked.stderr
        assert output.splitlines()[0] == kind, output
        assert not [line for line in output.splitlines() if line.startswith(("Error", "Warning"))], output
