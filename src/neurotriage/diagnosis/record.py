"""Recording an analysis for a patient: `draft` renders the report aside, `record` stores it.

The caller decides first (`clinical.decisions.decide`, database reads only), then `draft` renders
the report into a hidden folder with no transaction open, so the slow part holds no lock. `record`
stores the finding, cross-check and referral in the caller's transaction and moves the report into
place as its last step; the caller commits, then `settle`s the draft, or `discard`s it on any
failure, which removes the report again and puts back an earlier one it replaced. The finding's
key (a UUID) is allocated first, so the report names its finding before the finding is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from neurotriage.clinical.decisions import Decision, store_decision, store_finding, stored_summary
from neurotriage.clinical.snapshot import PatientSnapshot
from neurotriage.diagnosis.analysis import Analysis
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.files import drop_set_aside, undo_move
from neurotriage.report.folder import build_report, discard_report, publish_report
from neurotriage.report.inputs import ReportInput


@dataclass
class Draft:
    """An analysis with its decision and rendered report, ready to be stored for one patient."""

    key: str
    patient: PatientSnapshot
    analysis: Analysis
    decision: Decision
    out_dir: Path
    built: Path
    published: bool = field(default=False, init=False)
    replaced: Path | None = field(default=None, init=False)

    @property
    def segmentation_path(self) -> Path:
        """Where the report folder holds the segmentation once published."""
        return self.out_dir / self.analysis.segmentation_name

    def publish(self) -> None:
        """Move the report into place, setting aside an earlier report there until `settle`."""
        self.replaced = publish_report(self.built, self.out_dir)
        self.published = True

    def settle(self) -> None:
        """Once stored for good: drop the earlier report this one replaced."""
        drop_set_aside(self.replaced)

    def discard(self) -> None:
        """After a failure to store: remove the report and put back the one it replaced."""
        if self.published:
            undo_move(self.out_dir, self.replaced)
        else:
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


def draft(
    analysis: Analysis,
    decision: Decision,
    out_dir: Path,
    *,
    key: str,
    fhir: bool = False,
    timer: StageTimer | None = None,
) -> Draft:
    """Render the report of `analysis` and `decision` for `out_dir` into a hidden folder beside it."""
    timer = timer or StageTimer(quiet=True)
    with timer.stage("report"):
        built = build_report(out_dir, report_input(decision.patient, analysis, decision, key), fhir=fhir)
    return Draft(key, decision.patient, analysis, decision, Path(out_dir), built)


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
    draft.publish()
    return stored_summary(finding, check, referral) | {"finding_key": draft.key}
