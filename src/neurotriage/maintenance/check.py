"""`check`: after a sweep, do the findings in the database and the report folders on disk agree?

First it finishes the erasures a killed run left pending (`journal.py`) and finds what the retention rules
remove (`retention.py`), removing it when asked.

Each finding that has a report folder must find it complete: its report.json names the finding (or
a later finding that was written to the same folder) and every file it lists is there. Each report
folder in the report roots must belong to a finding. Hidden leftovers that the sweep could not
judge are problems too: they hold patient data.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Finding, Study
from neurotriage.maintenance.journal import Finished, finish_pending
from neurotriage.maintenance.patient_files import OnFile
from neurotriage.maintenance.retention import RetentionReport, apply_retention, retention_plan
from neurotriage.maintenance.sweep import REPORT_JSON, SweepResult, read_report, staging_roots, sweep


class Problem(BaseModel):
    """One disagreement between the database and the report folders."""

    kind: str  # "missing report", "wrong report", "incomplete report", "report of no finding", "unknown leftover"
    path: str
    message: str
    finding_id: int | None = None


class CheckResult(BaseModel):
    """What the sweep did, what was checked and every problem found."""

    sweep: SweepResult
    findings: int
    report_folders: int
    problems: list[Problem]
    erasures: list[Finished]  # pending erasures finished (or discarded: never committed)
    erasure_running: bool  # an erasure was running, so its journal was left to it
    retention: RetentionReport  # what the retention rules remove, or removed

    @property
    def ok(self) -> bool:
        """True when the database and the folders agree."""
        return not self.problems


@dataclass(frozen=True)
class _Row:
    id: int
    key: str
    patient_id: int
    folder: Path


def check(
    url: str | None = None, roots: Sequence[Path] | None = None, apply: bool = False, on_file: OnFile | None = None
) -> CheckResult:
    """Finish pending erasures; find what the retention rules remove (and remove it when `apply`, calling
    `on_file` after each file); sweep `roots` (default: `staging_roots()`) and the folders that hold
    findings' reports elsewhere; then compare every finding's report folder with the database, and every
    report folder in `roots` with the findings."""
    erasures = finish_pending(url)
    retention = retention_plan(url)
    if apply:
        retention = apply_retention(retention, on_file)
    roots = staging_roots() if roots is None else list(roots)
    rows = _findings(url)
    swept = sweep(url, roots, {row.folder.parent for row in rows})
    folders = list(_report_folders(roots))
    problems = [
        *_finding_problems(rows),
        *_foreign_folders(folders, rows),
        *(Problem(kind="unknown leftover", path=p, message=_unknown(p)) for p in swept.unknown),
    ]
    return CheckResult(
        sweep=swept,
        findings=len(rows),
        report_folders=len(folders),
        problems=problems,
        erasures=erasures or [],
        erasure_running=erasures is None,
        retention=retention,
    )


def _findings(url: str | None) -> list[_Row]:
    """Every finding that has a report folder."""
    query = (
        select(Finding.id, Finding.key, Study.patient_id, Finding.report_dir)
        .join(Study, Study.id == Finding.study_id)
        .where(Finding.report_dir.is_not(None))
        .order_by(Finding.id)
    )
    with transaction(url) as session:
        return [_Row(i, k, p, Path(d)) for i, k, p, d in session.execute(query)]


def _report_folders(roots: Sequence[Path]) -> Iterator[Path]:
    """Report folders two levels under each root (reports/patient-<id>/finding-<key>, jobs/<id>/report):
    visible folders named finding-* or holding a report.json."""
    for root in roots:
        for parent in _visible_folders(root):
            for folder in _visible_folders(parent):
                if folder.name.startswith("finding-") or (folder / REPORT_JSON).is_file():
                    yield folder


def _visible_folders(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _finding_problems(rows: list[_Row]) -> Iterator[Problem]:
    """Findings whose report folder is missing, names another finding, or lacks files it lists."""
    by_folder: dict[Path, dict[str, int]] = {}
    for row in rows:
        by_folder.setdefault(row.folder.resolve(), {})[row.key] = row.id
    for row in rows:
        found = _report_problem(row, by_folder[row.folder.resolve()])
        if found is not None:
            kind, what = found
            message = f"finding {row.id} (patient {row.patient_id}): report folder {row.folder} {what}"
            yield Problem(kind=kind, path=str(row.folder), message=message, finding_id=row.id)


def _report_problem(row: _Row, same_folder: dict[str, int]) -> tuple[str, str] | None:
    """(kind, what is wrong) with one finding's report folder, None when it is complete.

    `same_folder` maps the key of every finding written to that folder to its id: the report of a
    later one there is not a problem (a report folder given twice holds the last report)."""
    doc = read_report(row.folder)
    if doc is None:
        return "missing report", "has no readable report.json" if row.folder.is_dir() else "is missing"
    key = doc.get("finding_key")
    if key != row.key:
        return None if same_folder.get(key, 0) > row.id else ("wrong report", f"holds the report of finding key {key}")
    missing = [name for name in doc.get("files", []) if not (row.folder / name).is_file()]
    return ("incomplete report", f"lacks {', '.join(missing)}") if missing else None


def _foreign_folders(folders: list[Path], rows: list[_Row]) -> Iterator[Problem]:
    """Report folders in the roots that no finding points at."""
    known = {row.folder.resolve() for row in rows}
    for folder in folders:
        if folder.resolve() not in known:
            yield Problem(
                kind="report of no finding", path=str(folder), message=f"report folder {folder} belongs to no finding"
            )


def _unknown(path: str) -> str:
    return f"hidden leftover {path} was not made by this neurotriage; remove it once no run is using it"
