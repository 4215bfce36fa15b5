"""The results a clinician's sign-off sends back to the PACS: a final SR and summary page when the sign-off confirms
the finding, amended ones when it overrides the location or the verdict, the SR naming the one it replaces.

They are written into the finding's report folder, in reviewed/review-<id>/ beside the preliminary objects of
native/, so the newest SR there is the one the next sign-off replaces, then queued in the outbox for the destination
and tried once; a destination that is down keeps them queued for the outbox's retries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from neurotriage.anatomy.location import Location
from neurotriage.clinical.crosscheck import CrossCheck
from neurotriage.files import atomic_dir
from neurotriage.imaging.naming import naming_from_values, to_internal
from neurotriage.ingest.layout import INGEST_FOLDER, NATIVE_T1CE, T1CE_DICOM
from neurotriage.ingest.native import NativeSegmentation
from neurotriage.pacs.inbox import inbox_root
from neurotriage.pacs.results import Verifier, write_objects
from neurotriage.pacs.send import Destination, queue_results, send_pending
from neurotriage.report.folder import NATIVE_FOLDER

REVIEWED_FOLDER = "reviewed"  # in a report folder: review-<id>/ holds the objects that review's sign-off sent
UNKNOWN_ORGANISATION = "unknown"
_REVIEW = re.compile(r"review-(\d+)")


@dataclass(frozen=True)
class SignOff:
    """One sign-off of a finding whose study came as DICOM: the finding's state after it, and who signed."""

    review_id: int
    report_dir: Path  # the finding's report folder, with the preliminary objects in native/
    case_dir: Path  # the case ingested from the study, with its T1ce series in ingest/
    location: Location
    crosscheck: CrossCheck | None
    clinician: str  # a DICOM person name
    amendment: str | None  # what the sign-off changed; None when it confirms


def received_by_node(case_ref: str) -> bool:
    """Whether a study's case is a study folder of the DICOM node's inbox: the study came from a PACS."""
    return Path(case_ref).parent == inbox_root()


def has_dicom_results(report_dir: Path, case_dir: Path) -> bool:
    """Whether the finding's report holds a preliminary SR and its case the T1ce series the SR joins."""
    return bool(_preliminary_sr(report_dir)) and (case_dir / INGEST_FOLDER / T1CE_DICOM).is_dir()


def latest_sr(report_dir: Path) -> Path | None:
    """The finding's newest SR: the last sign-off's, else the preliminary one."""
    signed = sorted(_signed_off(report_dir), key=lambda folder: int(_REVIEW.fullmatch(folder.name)[1]))
    for folder in reversed(signed):
        found = sorted(folder.glob("*_sr.dcm"))
        if found:
            return found[0]
    found = _preliminary_sr(report_dir)
    return found[0] if found else None


def write_sign_off(sign_off: SignOff) -> list[Path]:
    """Write the sign-off's SR and summary page into the report's reviewed/review-<id>/; returns them."""
    native_dir = sign_off.report_dir / NATIVE_FOLDER
    (preliminary,) = _preliminary_sr(sign_off.report_dir)
    name = preliminary.name.removesuffix("_sr.dcm")
    replaces = latest_sr(sign_off.report_dir)
    native = _native_segmentation(native_dir / f"{name}_seg_native.nii.gz", sign_off.case_dir)
    verifier = Verifier(name=sign_off.clinician, organisation=_organisation(native.dicom_folder))
    seg = native_dir / f"{name}_seg.dcm"
    folder = sign_off.report_dir / REVIEWED_FOLDER / f"review-{sign_off.review_id}"
    with atomic_dir(folder) as built:
        written = write_objects(
            native,
            sign_off.location,
            sign_off.crosscheck,
            built,
            name,
            seg=seg if seg.is_file() else None,
            verifier=verifier,
            replaces=replaces,
            amendment=sign_off.amendment,
        )
    return [folder / path.name for path in written]


def send_sign_off(sign_off: SignOff, destination: Destination) -> Path:
    """Write the sign-off's objects, queue them for `destination` and try once; returns the outbox item."""
    item = queue_results(write_sign_off(sign_off), destination)
    send_pending(items=[item])
    return item


def _signed_off(report_dir: Path) -> list[Path]:
    folder = report_dir / REVIEWED_FOLDER
    return [p for p in folder.iterdir() if p.is_dir() and _REVIEW.fullmatch(p.name)] if folder.is_dir() else []


def _preliminary_sr(report_dir: Path) -> list[Path]:
    return sorted((report_dir / NATIVE_FOLDER).glob("*_sr.dcm"))


def _native_segmentation(labels_file: Path, case_dir: Path) -> NativeSegmentation:
    """The finding's labels on the native T1ce grid (as the report wrote them), with that T1ce and its series."""
    ingest = case_dir / INGEST_FOLDER
    t1ce = nib.load(str(ingest / NATIVE_T1CE))
    labels = np.asanyarray(nib.load(str(labels_file)).dataobj)
    return NativeSegmentation(
        t1ce=np.asanyarray(t1ce.dataobj).astype(np.float32),
        labels=to_internal(labels, naming_from_values(labels), str(labels_file)),
        affine=t1ce.affine,
        dicom_folder=ingest / T1CE_DICOM,
    )


def _organisation(series: Path) -> str:
    """The institution that acquired the study, the verifying clinician's organisation as far as it is known."""
    first = min(series.rglob("*.dcm"))
    value = pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["InstitutionName"]).get("InstitutionName")
    return str(value or "").strip() or UNKNOWN_ORGANISATION
