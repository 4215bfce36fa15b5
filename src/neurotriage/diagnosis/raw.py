"""A raw study handed to `diagnose`: ingested first (a stage of its own) into NEUROTRIAGE_HOME/cases/<ID>/.

Any input that is not a BraTS case folder (a DICOM folder, a .zip, a converter's NIfTI folder, an
off-grid NIfTI case) is raw. Before a pixel is read, the patient its DICOM headers name is checked
against the record the finding will be filed under; a mismatch stops the run unless accepted, and
an accepted mismatch is returned so provenance can record it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from neurotriage.clinical.snapshot import PatientSnapshot
from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.imaging.io import find_case
from neurotriage.imaging.naming import split_name
from neurotriage.imaging.sri24 import BRATS_AXCODES
from neurotriage.ingest.dicom import StudyPatient
from neurotriage.ingest.layout import INGEST_FOLDER, RECORD_NAME
from neurotriage.ingest.patient_match import patient_mismatches

CASES_FOLDER = "cases"


def is_raw_study(path: Path) -> bool:
    """Whether `path` is not a BraTS case: a file (a zip), a folder without BraTS-named files, or a BraTS-named
    case whose images are not 1 mm voxels in the BraTS (L, P, S) orientation."""
    path = Path(path)
    if path.is_file():
        return True
    if not path.is_dir():
        return False
    named = _brats_named(path)
    return not named or not _on_brats_grid(named[0])


def has_brats_names(folder: Path) -> bool:
    """Whether the folder holds files named like a BraTS case's (<ID>_t1ce.nii.gz, <ID>-t2f.nii.gz...)."""
    return bool(_brats_named(folder))


def _brats_named(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if split_name(p.name) is not None)


def brats_named_overrides(folder: Path) -> dict[str, Path]:
    """For an off-grid case whose files carry BraTS names: each sequence's file, as ingest overrides."""
    return dict(find_case(folder).images)


def _on_brats_grid(image: Path) -> bool:
    try:
        header = nib.load(str(image)).header
    except (OSError, ValueError, nib.filebasedimages.ImageFileError):
        return True  # the case loader reports an unreadable file by name
    # The shape is not checked: a crop of the grid is still on it (the segmenter says if it wants all of it).
    spacing_ok = np.allclose(header.get_zooms()[:3], 1.0, atol=0.01)
    return spacing_ok and nib.aff2axcodes(header.get_best_affine()) == BRATS_AXCODES


def raw_case_dir(source: Path) -> Path:
    """Where a raw study's BraTS case goes: NEUROTRIAGE_HOME/cases/<the input's name without .zip>.

    Exports are often all called DICOM or export: a folder that holds another input's case (or
    anything else) is never replaced, the name gets a number instead (<name>-2, <name>-3...)."""
    name = Path(source).name.removesuffix(".zip") or "study"
    cases = load_settings().home / CASES_FOLDER
    candidate, number = cases / name, 1
    while candidate.exists() and _ingested_from(candidate) != Path(source).resolve():
        number += 1
        candidate = cases / f"{name}-{number}"
    return candidate


def _ingested_from(case_dir: Path) -> Path | None:
    """The input an earlier ingest into `case_dir` read, None when it is not an ingest's case."""
    try:
        return Path(json.loads((case_dir / INGEST_FOLDER / RECORD_NAME).read_text())["input"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def patient_guard(patient: PatientSnapshot, accept_mismatch: bool, accepted: list[str]):
    """A `check_patient` for ingest: refuse a study whose headers name another patient, or note the override."""

    def check(study: StudyPatient | None) -> None:
        found = patient_mismatches(study, patient.name, patient.birth_date, patient.mrn, patient.mrn_issuer)
        if not found:
            return
        if not accept_mismatch:
            raise UserError(
                f"the study is not patient {patient.id}'s: {'; '.join(found)}; "
                "check the study and the patient, or accept the mismatch explicitly",
                field="accept_patient_mismatch",
            )
        accepted.extend(found)

    return check
