"""Which files of a finding's report folder may be downloaded: report.json, the segmentations, the FHIR
bundles (the diagnosis's and, after a review, the reviewed one), the DICOM SEG.

Only files the report folder's report.json lists (and report.json itself) are offered, from the
folder the database records: a name in a URL never reaches the file system unchecked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurotriage.report.folder import FHIR_JSON, FHIR_REVIEWED_JSON, REPORT_JSON

SUPERSEDED = " (as generated at diagnosis, superseded)"
# What each kind of report file is called on the page, by how its name ends; others are not offered.
KINDS = (
    ("report.json", "Report data (report.json)"),
    (FHIR_JSON, "FHIR R4 bundle"),
    (FHIR_REVIEWED_JSON, "FHIR R4 bundle, as reviewed"),
    ("_seg_native.nii.gz", "Segmentation in the patient's own space (NIfTI)"),
    ("_seg.dcm", "DICOM SEG"),
    ("_seg.nii.gz", "Segmentation in BraTS space (NIfTI)"),
)


def _label(name: str) -> str | None:
    return next((label for end, label in KINDS if name.endswith(end)), None)


def report_files(report_dir: str | None) -> list[str]:
    """The files of a report folder that may be downloaded, as listed by its report.json."""
    folder = Path(report_dir) if report_dir else None
    if folder is None or not (folder / REPORT_JSON).is_file():
        return []
    listed = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8")).get("files", [])
    return [REPORT_JSON, *(name for name in listed if _label(name) and name != REPORT_JSON)]


def download_links(finding_id: int, report_dir: str | None, superseded: bool = False) -> list[dict[str, Any]]:
    """Label and URL of each downloadable file of a finding, for the report page. Once the finding's result is
    `superseded` (a clinician's override, a re-run), the FHIR bundle written at diagnosis says so; the reviewed
    bundle and report.json carry the current result."""
    return [
        {
            "label": _label(name) + (SUPERSEDED if superseded and name.endswith(FHIR_JSON) else ""),
            "url": f"/reports/{finding_id}/files/{name}",
        }
        for name in report_files(report_dir)
    ]
