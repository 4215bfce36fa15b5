"""`export_pseudonymised`: write the export in a hidden folder beside OUT_DIR, check it for identifiers,
then rename it into place; a refusal or a failure at any point leaves nothing behind.

Layout of OUT_DIR:
  cases/<study pseudonym>/  the BraTS case (four sequences and the segmentation) and report.json
  findings.csv              one row per study (export/table.py)
  manifest.json             counts, the key's fingerprint, how dates and ages were changed, SHA-256 of every file
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurotriage import NOTICE, __version__
from neurotriage.diagnosis.record import UNWRITABLE
from neurotriage.errors import UserError
from neurotriage.export.case import describe, write_case
from neurotriage.export.keys import default_key_path, key_id, load_key
from neurotriage.export.plan import StudyRecord, plan_export
from neurotriage.export.pseudonyms import MAX_SHIFT_DAYS, Pseudonyms
from neurotriage.export.report import deidentified_report, stored_report
from neurotriage.export.scan import find_identifiers
from neurotriage.export.table import AGE_CAP, age_at_study, finding_row, write_table
from neurotriage.files import fsync_path, partial_dir, sha256_file, sync_tree
from neurotriage.report.folder import REPORT_JSON

CASES = "cases"
TABLE = "findings.csv"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote, and which key names its pseudonyms."""

    out_dir: Path
    patients: int
    studies: int
    files: int
    key_file: Path
    key_id: str


def check_out_dir(out_dir: Path) -> None:
    """Refuse an export folder that exists and is not an empty folder, or whose parent does not exist."""
    if out_dir.exists() or out_dir.is_symlink():
        if out_dir.is_symlink() or not out_dir.is_dir():
            raise UserError(f"{out_dir}: exists and is not a folder", field="out_dir")
        if any(out_dir.iterdir()):
            raise UserError(f"{out_dir}: the folder is not empty; choose a new or empty folder", field="out_dir")
    elif not out_dir.parent.is_dir():
        raise UserError(f"{out_dir}: its parent folder does not exist", field="out_dir")


def _check_key_outside(key_file: Path, out_dir: Path) -> None:
    if key_file.resolve().is_relative_to(out_dir.resolve()):
        raise UserError(f"{key_file}: the export key must be kept outside the export", field="key_file")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_study(root: Path, study: StudyRecord, ids: Pseudonyms) -> dict[str, Any]:
    """Write one study's case and report.json; returns its findings.csv row."""
    stored = stored_report(study.report_dir, describe(study))
    case_id = ids.study(study.study_id)
    folder = root / CASES / case_id
    names = write_case(study, case_id, folder)
    age = age_at_study(study.patient.birth_date, study.study_date)
    report = deidentified_report(stored, ids, study.patient.id, study.study_id, age=age, files=names)
    _write_json(folder / REPORT_JSON, report)
    return finding_row(study, ids)


def _patient_count(studies: list[StudyRecord]) -> int:
    return len({study.patient.id for study in studies})


def _manifest(root: Path, studies: list[StudyRecord], key: str) -> dict[str, Any]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {
        "notice": NOTICE,
        "software_version": __version__,
        "key_id": key,
        "patients": _patient_count(studies),
        "studies": len(studies),
        "dates": f"shifted per patient by 1 to {MAX_SHIFT_DAYS} days, earlier or later; intervals are kept",
        "ages": f"whole years at the study date; {AGE_CAP} stands for {AGE_CAP} or older",
        "files": {p.relative_to(root).as_posix(): sha256_file(p) for p in files},
    }


def _fill(root: Path, studies: list[StudyRecord], ids: Pseudonyms, on_study: Callable[[], None]) -> None:
    (root / CASES).mkdir()
    rows = []
    for study in studies:
        rows.append(_write_study(root, study, ids))
        on_study()
    write_table(root / TABLE, rows)
    _write_json(root / MANIFEST, _manifest(root, studies, key_id(ids.key)))


def _publish(built: Path, out_dir: Path) -> None:
    """Rename the finished export to `out_dir`, which may only be absent or an empty folder."""
    sync_tree(built)
    try:
        os.rename(built, out_dir)  # replaces an empty folder; fails on anything else
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        raise UserError(f"{out_dir}: something was put there during the export; nothing was exported") from None
    fsync_path(out_dir.parent)


def export_pseudonymised(
    out_dir: Path | str,
    patients: Sequence[int] | None = None,
    key_file: Path | str | None = None,
    url: str | None = None,
    on_study: Callable[[], None] = lambda: None,
    planned: Callable[[int], None] = lambda count: None,
) -> ExportSummary:
    """Export every diagnosed study (or those of `patients`) pseudonymised into `out_dir`, under the key in
    `key_file` (default NEUROTRIAGE_HOME/export-key, created on first use). `planned` hears how many
    studies will be written, `on_study` each one written."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    key_path = Path(key_file) if key_file is not None else default_key_path()
    _check_key_outside(key_path, out_dir)
    studies = plan_export(patients, url)
    ids = Pseudonyms(load_key(key_path, create_parent=key_file is None))
    planned(len(studies))
    built = partial_dir(out_dir, 0o700)  # pseudonymised health data: the owner's until they share it
    try:
        try:
            _fill(built, studies, ids, on_study)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
            raise UserError(f"{out_dir}: cannot write the export: {exc.strerror}", field="out_dir") from None
        hit = find_identifiers(built, {study.patient for study in studies})
        if hit is not None:
            raise UserError(f"{hit.path}: holds an exported patient's {hit.kind}; the export was removed")
        count = sum(1 for p in built.rglob("*") if p.is_file())
        _publish(built, out_dir)
    finally:
        shutil.rmtree(built, ignore_errors=True)
    return ExportSummary(out_dir, _patient_count(studies), len(studies), count, key_path, key_id(ids.key))
