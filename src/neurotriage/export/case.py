"""A study's BraTS case in the export: its four sequences and its segmentation, scrubbed and renamed
to the study's pseudonym in the case's own naming (`<ID>_flair.nii.gz` or `<ID>-t2f.nii.gz` ...)."""

from __future__ import annotations

from pathlib import Path

from neurotriage.errors import UserError
from neurotriage.export.nifti import write_scrubbed
from neurotriage.export.plan import StudyRecord
from neurotriage.files import sha256_file
from neurotriage.imaging.io import CaseFiles, find_case
from neurotriage.imaging.naming import SEQUENCES


def describe(study: StudyRecord) -> str:
    """How messages name a study: by its and its patient's database ids."""
    return f"study {study.study_id} of patient {study.patient.id}"


def source_case(study: StudyRecord) -> CaseFiles:
    """The case the finding was computed from: the folder of its recorded inputs (for a raw study, the
    case `ingest` made), else the study's case folder; its images must be those that were diagnosed."""
    inputs = (study.provenance or {}).get("inputs") or []
    folder = Path(inputs[0]["path"]).parent if inputs else Path(study.case_ref)
    try:
        files = find_case(folder)
    except UserError as exc:
        raise UserError(f"{describe(study)}: {exc.message}") from None
    recorded = {Path(entry["path"]): entry["sha256"] for entry in inputs}
    for path in files.images.values():
        expected = recorded.get(path.resolve())
        if expected is not None and sha256_file(path) != expected:
            raise UserError(f"{describe(study)}: {path} has changed since it was diagnosed (its SHA-256 differs)")
    return files


def segmentation(study: StudyRecord) -> Path:
    """The finding's segmentation file, which must still exist."""
    path = Path(study.segmentation_path) if study.segmentation_path else None
    if path is None or not path.is_file():
        raise UserError(f"{describe(study)}: its finding {study.finding_id} has no segmentation file")
    return path


def write_case(study: StudyRecord, case_id: str, folder: Path) -> list[str]:
    """Write the study's case into `folder` under `case_id`; returns the file names written."""
    files = source_case(study)
    sources = {key: files.images[key] for key in SEQUENCES} | {"seg": segmentation(study)}
    folder.mkdir(parents=True)
    names = []
    for key, source in sources.items():
        name = files.naming.filename(case_id, key)
        write_scrubbed(source, folder / name)
        names.append(name)
    return names
