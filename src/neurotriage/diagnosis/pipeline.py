"""`diagnose`: one study from MRI to referral, stored and reported.

The flow is `analyse` (no database) -> `decide` (one read transaction) -> `draft` (the report
rendered aside, no transaction open) -> `record` (one write transaction that stores the finding,
cross-check and referral, then commits) -> `settle` (the report moved into place). Everything that
can fail on the user's input (case folder, patient, model) is checked before any work is stored,
and a failure before the commit leaves neither rows nor a report (an earlier report stays).

A queued study's claim (diagnosis/queue.py) passes its `fence` to `diagnose`, which runs it first
in the storing transaction, so a claim that was taken over stores nothing (diagnosis/batch.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from neurotriage.clinical.db import CommitUnknown, transaction
from neurotriage.clinical.decisions import decide
from neurotriage.clinical.snapshot import PatientSnapshot, load_patient
from neurotriage.config import load_settings
from neurotriage.diagnosis.analysis import Analysis, analyse
from neurotriage.diagnosis.raw import (
    brats_named_overrides,
    has_brats_names,
    is_raw_study,
    patient_guard,
    raw_case_dir,
)
from neurotriage.diagnosis.record import Draft, draft, new_finding_key, record
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.faults import fault_point
from neurotriage.imaging.io import find_case
from neurotriage.report.folder import check_target

if TYPE_CHECKING:  # torch and SimpleITK: imported only for raw studies
    from neurotriage.ingest.pipeline import IngestRecord

WriteLock = Callable[[], AbstractContextManager[Any]]
Fence = Callable[[Session], None]


@dataclass(frozen=True)
class DiagnoseOptions:
    """What a diagnosis run may vary: model (several: an ensemble), report location, FHIR, referral count, database."""

    model: Path | Sequence[Path] | None = None
    out_dir: Path | None = None
    fhir: bool = False
    limit: int = 10
    url: str | None = None
    accept_patient_mismatch: bool = False


def default_report_dir(patient_id: int, finding_key: str) -> Path:
    """Reports live beside the database: NEUROTRIAGE_HOME/reports/patient-<id>/finding-<key>."""
    return load_settings().home / "reports" / f"patient-{patient_id}" / f"finding-{finding_key}"


def _check_patient(patient_id: int, url: str | None) -> PatientSnapshot:
    with transaction(url) as session:
        return load_patient(session, patient_id)


def _draft(patient: PatientSnapshot, analysis: Analysis, options: DiagnoseOptions, timer: StageTimer) -> Draft:
    key = new_finding_key()
    out_dir = Path(options.out_dir).resolve() if options.out_dir else default_report_dir(patient.id, key)
    with timer.stage("cross-check + referral"), transaction(options.url) as session:
        decision = decide(session, patient, analysis.location, options.limit)
    return draft(analysis, decision, out_dir, key=key, fhir=options.fhir, timer=timer)


def store(
    drafted: Draft,
    url: str | None,
    case_ref: str | None = None,
    write_lock: WriteLock = nullcontext,
    fence: Fence | None = None,
) -> dict:
    """`record` a draft in one write transaction held under `write_lock`, commit it, then move the report
    into place; `fence` runs first in that transaction and may refuse it by raising. A failure before
    the commit removes the draft (an earlier report stays)."""
    try:
        with write_lock(), transaction(url) as session:
            if fence is not None:
                fence(session)
            stored = record(session, drafted, case_ref)
    except CommitUnknown:
        # The finding may be stored after all: the draft stays, and the start-up sweep (or
        # `neurotriage check`) moves it into place if the finding exists, or removes it if not.
        raise
    except BaseException:
        drafted.discard()
        raise
    drafted.settle()
    return stored


def _ingest_raw(
    source: Path, patient: PatientSnapshot, options: DiagnoseOptions, timer: StageTimer, accepted: list[str]
) -> IngestRecord:
    """Ingest a raw study into NEUROTRIAGE_HOME/cases/<ID>/ after checking whose it is; returns its record."""
    from neurotriage.ingest.pipeline import ingest_study  # torch and SimpleITK: only for raw studies

    target = raw_case_dir(source)
    overrides = brats_named_overrides(source) if source.is_dir() and has_brats_names(source) else None
    guard = patient_guard(patient, options.accept_patient_mismatch, accepted)
    return ingest_study(source, target, overrides=overrides, timer=timer, check_patient=guard)


def _with_raw_provenance(analysis: Analysis, source: Path, accepted: list[str], ingested: IngestRecord) -> Analysis:
    update = {
        "raw_study": str(source.resolve()),
        "raw_study_date": ingested.study_date,
        "accepted_patient_mismatch": accepted,
    }
    return analysis.model_copy(update={"provenance": analysis.provenance.model_copy(update=update)})


def diagnose(
    case_dir: Path | str,
    patient_id: int,
    options: DiagnoseOptions | None = None,
    timer: StageTimer | None = None,
    case_ref: str | None = None,
    write_lock: WriteLock = nullcontext,
    fence: Fence | None = None,
) -> dict[str, Any]:
    """Segment, locate, cross-check, refer and report one study for one patient; returns the summary.

    `case_ref` names the study in the database (default: the case folder's absolute path);
    `write_lock` is held around the storing transaction only."""
    options = options or DiagnoseOptions()
    timer = timer or StageTimer()
    with timer.stage("check inputs"):
        raw = is_raw_study(Path(case_dir))
        files = None if raw else find_case(case_dir)
        patient = _check_patient(patient_id, options.url)
        if options.out_dir:
            check_target(Path(options.out_dir))
    accepted: list[str] = []
    if raw:
        ingested = _ingest_raw(Path(case_dir), patient, options, timer, accepted)
        files = find_case(ingested.case_dir)
    fault_point("analysing")
    analysis = analyse(files, options.model, timer)
    if raw:
        analysis = _with_raw_provenance(analysis, Path(case_dir), accepted, ingested)
    drafted = _draft(patient, analysis, options, timer)
    with timer.stage("store"):
        stored = store(drafted, options.url, case_ref, write_lock, fence)
    return {
        "patient_id": patient_id,
        "case_id": analysis.case_id,
        "report_dir": str(drafted.out_dir),
        "locate": analysis.location.model_dump(mode="json"),
        "provenance": analysis.provenance.model_dump(mode="json"),
        "timings_s": timer.timings,
        **stored,
    }
