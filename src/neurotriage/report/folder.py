"""Write one report folder atomically: report.html, report.json, PNG figures, the
segmentation and its uncertainty map as NIfTI and, on request, fhir_bundle.json.

Everything is built in a hidden temporary folder next to the target and renamed into
place at the end, so a failure at any point leaves no half-written report behind. An
earlier report in the same place is swapped out only once the new one is complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from neurotriage import NOTICE
from neurotriage.errors import UserError
from neurotriage.files import move_into_place, partial_dir, swap_dir
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import NAMINGS, from_internal
from neurotriage.ingest.native import write_native_dicom_seg
from neurotriage.report import html
from neurotriage.report.fhir import build_fhir_bundle
from neurotriage.report.figures import render_figures
from neurotriage.report.inputs import ReportInput
from neurotriage.segmentation.uncertainty import write_uncertainty

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
FHIR_JSON = "fhir_bundle.json"
# The FHIR bundle as it stands after a clinician's review, beside the one written at diagnosis (web/review_exports.py).
FHIR_REVIEWED_JSON = "fhir_bundle_reviewed.json"
NATIVE_FOLDER = "native"


def check_target(out_dir: Path) -> None:
    """Refuse a report folder that is a file, or a non-empty folder holding no earlier report."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder; choose another report folder", field="out")
    # Only a previous report (or an empty folder) may be replaced, never arbitrary user files.
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / REPORT_JSON).is_file():
        raise UserError(
            f"{out_dir}: folder is not empty and holds no {REPORT_JSON}; choose another report folder", field="out"
        )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_segmentation(folder: Path, report: ReportInput) -> Path | None:
    imaging = report.imaging
    if imaging is None or imaging.seg is None:
        return None
    naming = NAMINGS[imaging.naming]
    path = folder / naming.filename(imaging.case_id, "seg")
    return write_nifti(from_internal(imaging.seg, naming), imaging.affine, path)


def _write_uncertainty(folder: Path, report: ReportInput) -> Path | None:
    """`<ID>_uncertainty.nii.gz` (in the case's naming) beside the segmentation: readers see the normalised entropy."""
    imaging = report.imaging
    if imaging is None or imaging.uncertainty is None:
        return None
    path = folder / NAMINGS[imaging.naming].filename(imaging.case_id, "uncertainty")
    return write_uncertainty(imaging.uncertainty, imaging.affine, path)


def _write_native(folder: Path, report: ReportInput) -> list[str]:
    """The segmentation in the patient's own space: NIfTI and, when the study came as DICOM, the objects for its PACS
    (a DICOM SEG, a preliminary measurement report SR and a summary page)."""
    imaging = report.imaging
    if imaging is None or imaging.native is None:
        return []
    native = imaging.native
    (folder / NATIVE_FOLDER).mkdir()
    nifti = folder / NATIVE_FOLDER / f"{imaging.case_id}_seg_native.nii.gz"
    written = [write_nifti(from_internal(native.labels, NAMINGS[imaging.naming]), native.affine, nifti)]
    if native.dicom_folder is not None:
        from neurotriage.pacs.results import write_result_objects  # highdicom: only when DICOM is written

        seg = write_native_dicom_seg(native, folder / NATIVE_FOLDER / f"{imaging.case_id}_seg.dcm")
        written += [seg, *write_result_objects(report, folder / NATIVE_FOLDER, seg=seg)]
    return [f"{NATIVE_FOLDER}/{path.name}" for path in written]


def _fill(folder: Path, report: ReportInput, fhir: bool) -> None:
    figures = render_figures(report, folder)
    seg = _write_segmentation(folder, report)
    uncertainty = _write_uncertainty(folder, report)
    native = _write_native(folder, report)
    (folder / REPORT_HTML).write_text(
        html.render_html(report, {name: path.read_bytes() for name, path in figures.items()}), encoding="utf-8"
    )
    volumes = [path.name for path in (seg, uncertainty) if path is not None]
    files = [REPORT_HTML, *(p.name for p in figures.values()), *volumes, *native]
    if fhir:
        _write_json(folder / FHIR_JSON, build_fhir_bundle(report))
        files.append(FHIR_JSON)
    data = report.to_json()
    if uncertainty is not None and data["uncertainty"] is not None:
        data["uncertainty"]["map"] = uncertainty.name
    # report.json last: its presence marks a complete report folder.
    _write_json(folder / REPORT_JSON, {"notice": NOTICE, **data, "files": sorted(files)})


def build_report(out_dir: Path | str, report: ReportInput, *, fhir: bool = False) -> Path:
    """Build the report meant for `out_dir` in a hidden sibling folder and return that folder.

    `publish_report` moves it into place; `discard_report` removes it."""
    out_dir = Path(out_dir)
    check_target(out_dir)
    built = partial_dir(out_dir)
    try:
        _fill(built, report, fhir)
    except BaseException:
        discard_report(built)
        raise
    return built


def publish_report(built: Path, out_dir: Path | str) -> Path | None:
    """Move a built report folder into place. An earlier report there is set aside and returned, to be
    dropped (`files.drop_set_aside`)."""
    out_dir = Path(out_dir)
    check_target(out_dir)
    return move_into_place(built, out_dir)


def discard_report(built: Path) -> None:
    """Remove a built report folder that will not be published."""
    shutil.rmtree(built, ignore_errors=True)


def write_report(out_dir: Path | str, report: ReportInput, *, fhir: bool = False) -> Path:
    """Write the report folder `out_dir` atomically (replacing an earlier report there); returns it."""
    built = build_report(out_dir, report, fhir=fhir)
    try:
        swap_dir(built, Path(out_dir))
    except BaseException:
        discard_report(built)
        raise
    return Path(out_dir)
