"""Recording an analysis for a patient: `prepare` reads and renders, `record` stores.

`prepare` only reads the database (symptoms, knowledge base, referral candidates) and renders the
report into a hidden folder, so the slow part holds no write lock. `record` then stores the
finding, cross-check and referral in the caller's transaction and moves the report into place as
its last step: a failure before that leaves neither rows nor a report. The finding's key (a UUID)
is allocated in `prepare`, so the report names its finding before the finding is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from neurotriage.clinical.decisions import Decision, decide, store_decision, store_finding, stored_summary
from neurotriage.clinical.snapshot import PatientSnapshot
from neurotriage.diagnosis.analysis import Analysis
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.report.folder import build_report, discard_report, publish_report
from neurotriage.report.inputs import ReportInput


@dataclass(frozen=True)
class Draft:
    """An analysis with its decision and rendered report, ready to be stored for one patient."""

    key: str
    patient: PatientSnapshot
    analysis: Analysis
    decision: Decision
    out_dir: Path
    built: Path

    @property
    def segmentation_path(self) -> Path:
        """Where the report folder holds the segmentation once published."""
        return self.out_dir / self.analysis.segmentation_name

    def discard(self) -> None:
        """Remove the rendered report (after a failure to store it)."""
        discard_report(self.built)


def new_finding_key() -> str:
    """A fresh finding key: a random UUID, known before the finding is stored."""
    return str(uuid.uuid4())


def report_input(patient: PatientSnapshot, analysis: Analysis, decision: Decision, key: str) -> ReportInput:
    """The report of one finding, from the stages' objects."""
    return ReportInput(
        patient=patient.model_dump(),
        symptoms=[s.model_dump() for s in patient.symptoms],
        locate=analysis.location,
        crosscheck=decision.crosscheck,
        referrals=decision.ranking.recommendations,
        provenance=analysis.provenance,
        imaging={
            "case_id": analysis.case_id,
            "images": analysis.images,
            "seg": analysis.labels,
            "affine": analysis.affine,
            "naming": analysis.naming,
        },
        finding_key=key,
    )


def prepare(
    session: Session,
    patient: PatientSnapshot,
    analysis: Analysis,
    out_dir: Path,
    *,
    key: str,
    limit: int = 10,
    fhir: bool = False,
    timer: StageTimer | None = None,
) -> Draft:
    """Cross-check, rank referrals (database reads only) and render the report for `out_dir`."""
    timer = timer or StageTimer(quiet=True)
    with timer.stage("cross-check + referral"):
        decision = decide(session, patient, analysis.location, limit)
    with timer.stage("report"):
        built = build_report(out_dir, report_input(patient, analysis, decision, key), fhir=fhir)
    return Draft(key, patient, analysis, decision, Path(out_dir), built)


def record(session: Session, draft: Draft, case_ref: str | None = None) -> dict[str, Any]:
    """Store the finding, its cross-check and referral in `session`'s transaction, then publish the report.

    `case_ref` names the study (default: the case folder's absolute path)."""
    analysis = draft.analysis
    finding = store_finding(
        session,
        draft.patient.id,
        case_ref or str(analysis.folder),
        analysis.location,
        analysis.provenance.model_id or "unknown",
        key=draft.key,
        segmentation_path=str(draft.segmentation_path),
        report_dir=str(draft.out_dir),
        provenance=analysis.provenance.model_dump(mode="json"),
    )
    check, referral = store_decision(session, draft.decision, finding.id)
    publish_report(draft.built, draft.out_dir)
    return stored_summary(finding, check, referral) | {"finding_key": draft.key}
