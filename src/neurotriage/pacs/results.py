"""The DICOM objects a finding sends back to the PACS besides its SEG: a TID 1500 measurement report (Comprehensive
3D SR) and a summary page (Secondary Capture) that any viewer shows.

Both join the source study: they copy the patient and study tags of the T1ce series the case was ingested from, and
each starts a series of its own. The SR's volumes of the three labelled compartments reference the SEG's segments,
so a viewer links each volume to its outline; whole tumour and tumour core, unions of segments, stand alone. Until a
clinician signs the finding off the objects are preliminary: the SR is PARTIAL and UNVERIFIED and the page says
PRELIMINARY. A final SR is COMPLETE and VERIFIED by the clinician; an amended one, for a sign-off that changed the
finding, is too, and its content and a comment say what changed. Either names the SR it replaces.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydantic import BaseModel, ConfigDict
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from neurotriage import __version__
from neurotriage.anatomy.location import Location
from neurotriage.clinical.crosscheck import CrossCheck
from neurotriage.files import atomic_path
from neurotriage.imaging.labels import LEGEND_NAMES, VOLUME_LABELS
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_seg import CONTENT_DESCRIPTION, PROPERTY_TYPES, source_header
from neurotriage.ingest.dicom_seg import SERIES_NUMBER as SEG_SERIES_NUMBER
from neurotriage.ingest.native import NativeSegmentation
from neurotriage.pacs.summary_page import render_summary_page, summary_lines
from neurotriage.report.inputs import ReportInput
from neurotriage.terminology import BODY_STRUCTURES, LATERALITY

SR_SERIES_DESCRIPTION = "neurotriage measurement report"
SC_SERIES_DESCRIPTION = "neurotriage summary page (not a medical device)"
SR_SERIES_NUMBER = SEG_SERIES_NUMBER + 1
SC_SERIES_NUMBER = SEG_SERIES_NUMBER + 2
NOTICE = CONTENT_DESCRIPTION  # "research and decision support, not a medical device"
AMENDED = "Amended by a clinician"
# UCUM units are expressions of its grammar, not entries of a list: "ml" is UCUM's millilitre.
MILLILITRE = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
# Volumes field -> what the measurement group tracks; the three labelled ones are the SEG's segment labels.
COMPARTMENTS = {
    "whole_tumour": "whole tumour",
    "tumour_core": "tumour core",
    **{key: LEGEND_NAMES[label] for key, label in VOLUME_LABELS.items()},
}
ALGORITHM = hd.sr.AlgorithmIdentification(name="neurotriage", version=__version__)
# One UID for neurotriage as the observing device, the same on every installation.
DEVICE_UID = generate_uid(entropy_srcs=["neurotriage device observer"])


class Verifier(BaseModel):
    """The clinician who signed a finding off (DICOM person name, e.g. 'Doe^Jane') and their organisation."""

    model_config = ConfigDict(frozen=True)

    name: str
    organisation: str


def write_result_objects(
    report: ReportInput,
    out_dir: Path,
    *,
    seg: Path | None = None,
    preliminary: bool = True,
    verifier: Verifier | None = None,
    replaces: Path | None = None,
) -> list[Path]:
    """Write `<ID>_sr.dcm` and `<ID>_summary.dcm` into `out_dir` for a finding whose study came as DICOM.

    `seg` is the finding's DICOM SEG, whose segments the SR references; a final SR (`preliminary` False) needs the
    `verifier`; `replaces` is the SR this one supersedes.
    """
    native, location = _dicom_finding(report)
    if preliminary == (verifier is not None):
        raise ValueError("a final result needs the clinician who verified it, a preliminary one has none")
    case_id = report.imaging.case_id
    return write_objects(
        native, location, report.crosscheck, out_dir, case_id, seg=seg, verifier=verifier, replaces=replaces
    )


def write_objects(
    native: NativeSegmentation,
    location: Location,
    crosscheck: CrossCheck | None,
    out_dir: Path,
    name: str,
    *,
    seg: Path | None = None,
    verifier: Verifier | None = None,
    replaces: Path | None = None,
    amendment: str | None = None,
) -> list[Path]:
    """Write `<name>_sr.dcm` and `<name>_summary.dcm` into `out_dir`: preliminary without a `verifier`, final with
    one, and amended when `amendment` says what the clinician changed; `replaces` is the SR they supersede."""
    if native.dicom_folder is None:
        raise ValueError("the study did not come as DICOM: there is no series for results to join")
    preliminary = verifier is None
    sources = [source_header(path) for path in scan_dicom_folder(native.dicom_folder).series[0].files]
    seg_header = pydicom.dcmread(seg, stop_before_pixels=True) if seg is not None else None
    sr = _structured_report(location, crosscheck, sources, seg_header, verifier, replaces, amendment)
    page = render_summary_page(
        native,
        summary_lines(location, crosscheck) + ([f"{AMENDED}: {amendment}"] if amendment else []),
        NOTICE,
        preliminary=preliminary,
        signed_by=None if verifier is None else f"{verifier.name.replace('^', ' ').strip()}, {verifier.organisation}",
    )
    return [
        _save(sr, Path(out_dir) / f"{name}_sr.dcm"),
        _save(_secondary_capture(page, sources[0], preliminary), Path(out_dir) / f"{name}_summary.dcm"),
    ]


def read_sr_volumes(path: Path) -> dict[str, float]:
    """The volumes (ml) a measurement report written here holds, by `Volumes` field name."""
    content = hd.sr.srread(path).content
    names = {name: key for key, name in COMPARTMENTS.items()}
    groups = [*content.get_image_measurement_groups(), *content.get_volumetric_roi_measurement_groups()]
    return {
        names[group.tracking_identifier]: float(group.get_measurements(name=codes.SCT.Volume)[0].value)
        for group in groups
    }


def _dicom_finding(report: ReportInput) -> tuple[NativeSegmentation, Location]:
    imaging = report.imaging
    if imaging is None or imaging.native is None or imaging.native.dicom_folder is None:
        raise ValueError("the study did not come as DICOM: there is no series for results to join")
    if report.locate is None:
        raise ValueError("results for the PACS need the tumour's localisation")
    return imaging.native, report.locate


def _structured_report(
    location: Location,
    crosscheck: CrossCheck | None,
    sources: list[Dataset],
    seg: Dataset | None,
    verifier: Verifier | None,
    replaces: Path | None,
    amendment: str | None = None,
) -> hd.sr.Comprehensive3DSR:
    segments = _segments(seg, sources[0].SeriesInstanceUID)
    content = _measurement_report(location, crosscheck, segments, _status(verifier, amendment))
    return hd.sr.Comprehensive3DSR(
        evidence=[*sources, *([seg] if seg is not None else [])],
        content=content,
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="neurotriage",
        is_complete=verifier is not None,
        is_final=verifier is not None,
        is_verified=verifier is not None,
        verifying_observer_name=None if verifier is None else verifier.name,
        verifying_organization=None if verifier is None else verifier.organisation,
        previous_versions=None if replaces is None else [pydicom.dcmread(replaces, stop_before_pixels=True)],
        series_description=SR_SERIES_DESCRIPTION,
        software_versions=__version__,
    )


def _segments(seg: Dataset | None, source_series_uid: str) -> dict[int, hd.sr.ReferencedSegment]:
    """Internal label -> the SEG segment of that label's property type."""
    if seg is None:
        return {}
    numbers = {
        (
            item.SegmentedPropertyTypeCodeSequence[0].CodeValue,
            item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator,
        ): item.SegmentNumber
        for item in seg.SegmentSequence
    }
    return {
        label: hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=numbers[(code.value, code.scheme_designator)],
            source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
        )
        for label, code in PROPERTY_TYPES.items()
        if (code.value, code.scheme_designator) in numbers
    }


def _measurement_report(
    location: Location,
    crosscheck: CrossCheck | None,
    segments: dict[int, hd.sr.ReferencedSegment],
    status: str,
) -> hd.sr.MeasurementReport:
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name="neurotriage", manufacturer_name="neurotriage", model_name="neurotriage"
        ),
    )
    groups = [
        _group(key, getattr(location.volumes_ml, key), _finding_sites(location), segments.get(VOLUME_LABELS.get(key)))
        for key in COMPARTMENTS
    ]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.LN.BrainMRI,
        imaging_measurements=groups,
    )
    report[0].ContentSequence.append(_qualitative_evaluations(location, crosscheck, status))
    return report


def _group(key: str, ml: float, sites: list[hd.sr.FindingSite], segment: hd.sr.ReferencedSegment | None):
    """One compartment's volume: tied to its SEG segment when it has one."""
    label = VOLUME_LABELS.get(key)
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=COMPARTMENTS[key]),
        "finding_type": codes.SCT.Neoplasm if label is None else PROPERTY_TYPES[label],
        "algorithm_id": ALGORITHM,
        "finding_sites": sites,
        "measurements": [
            hd.sr.Measurement(
                name=codes.SCT.Volume,
                value=ml,
                unit=MILLILITRE,
                method=codes.DCM.SumOfSegmentedVoxelMethodForVolume,
            )
        ],
    }
    if segment is None:
        return hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)


def _finding_sites(location: Location) -> list[hd.sr.FindingSite]:
    """The primary region and its side, coded; the brain and the hemisphere when the region has no SNOMED code."""
    if not location.has_tumour:
        return []
    region, side = location.primary_region, location.primary_region_side
    if region not in BODY_STRUCTURES:
        region, side = "brain", location.hemisphere
    code, meaning = BODY_STRUCTURES[region]
    laterality = LATERALITY.get(side)
    return [
        hd.sr.FindingSite(
            anatomic_location=hd.sr.CodedConcept(code, "SCT", meaning),
            laterality=None if laterality is None else hd.sr.CodedConcept(laterality[0], "SCT", laterality[1]),
        )
    ]


def _status(verifier: Verifier | None, amendment: str | None) -> str:
    """The SR's sign-off status as its comment says it."""
    if verifier is None:
        return "PRELIMINARY: not signed off by a clinician"
    return f"{AMENDED}: {amendment}" if amendment else "Signed off by a clinician"


def _qualitative_evaluations(
    location: Location, crosscheck: CrossCheck | None, status: str
) -> hd.sr.ContainerContentItem:
    """TID 1500's Qualitative Evaluations: location, midline, the symptom cross-check and the notice, as text."""
    texts = [
        (codes.DCM.Finding, f"Location: {location.site()}"),
        (codes.DCM.Finding, f"Crosses the midline: {'yes' if location.crosses_midline else 'no'}"),
    ]
    if location.summary:
        texts.append((codes.DCM.Summary, location.summary))
    if crosscheck is not None:
        texts.append((codes.DCM.Conclusion, f"Symptom cross-check: {crosscheck.verdict}"))
        if crosscheck.summary:
            texts.append((codes.DCM.Summary, crosscheck.summary))
    texts += [(codes.DCM.Comment, status), (codes.DCM.Comment, NOTICE)]
    container = hd.sr.ContainerContentItem(
        name=hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations"),  # TID 1500 row 12
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = [
        hd.sr.TextContentItem(name=name, value=value, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
        for name, value in texts
    ]
    return container


def _secondary_capture(page: np.ndarray, source: Dataset, preliminary: bool) -> hd.sc.SCImage:
    """The rendered page as a Secondary Capture in the source's study."""
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=page,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="neurotriage",
        patient_orientation=("L", "P"),
        series_description=SC_SERIES_DESCRIPTION,
        software_versions=__version__,
    )
    # A page has no patient orientation: DICOM lets this type 2C attribute be empty, highdicom wants a value.
    sc.PatientOrientation = ""
    sc.BodyPartExamined = "BRAIN"  # unpaired, so the series has no laterality
    sc.ImageComments = f"{'PRELIMINARY. ' if preliminary else ''}{NOTICE}"
    return sc


def _save(ds: Dataset, path: Path) -> Path:
    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
    return path
