"""Recording an analysis for a patient: `draft` renders the report aside, `record` stores it.

The caller decides first (`clinical.decisions.decide`, database reads only), then `draft` renders
the report into a hidden folder and flushes it to the disk with no transaction open, so the slow
part holds no lock. `record` stores the finding, cross-check and referral in the caller's
transaction; the caller commits, then `settle`s the draft, which moves the report into place (an
earlier report there is dropped only now), or `discard`s it on any failure before the commit,
which removes it: a failed commit leaves no report and displaces none. The finding's key (a UUID)
is allocated first, so the report names its finding before the finding is stored.

A process killed between the commit and the move leaves a complete, flushed report of a stored
finding in its hidden folder; `maintenance.sweep` moves it into place. The fault points
(`neurotriage.faults`) mark each of these steps.
"""

from __future__ import annotations

import errno
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from neurotriage.clinical.decisions import Decision, store_decision, store_finding, stored_summary
from neurotriage.clinical.snapshot import PatientSnapshot
from neurotriage.diagnosis.analysis import Analysis
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.errors import UserError
from neurotriage.faults import fault_point
from neurotriage.files import drop_set_aside, sync_tree
from neurotriage.report.folder import build_report, discard_report, publish_report
from neurotriage.report.hints import review_hints
from neurotriage.report.inputs import ReportInput

# A report folder that cannot be written for these reasons (a full disk, no permission) is the
# machine's state, not a bug: one line, exit 2.
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


@dataclass
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

    def settle(self) -> None:
        """Once the finding is committed: move the report into place, then drop an earlier report it replaced."""
        fault_point("committed")
        replaced = publish_report(self.built, self.out_dir)
        fault_point("moved")
        drop_set_aside(replaced)
        fault_point("settled")

    def discard(self) -> None:
        """After a failure to store: remove the drafted report (nothing was moved into place)."""
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
            "uncertainty": analysis.uncertainty,
            "affine": analysis.affine,
            "naming": analysis.naming,
            "native": analysis.native,
        },
        review_hints=review_hints(analysis.images.get("flair"), analysis.labels, analysis.affine),
        uncertainty=analysis.uncertain,
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
    """Render the report of `analysis` and `decision` for `out_dir` into a hidden folder beside it and
    flush it to the disk; a full disk or a folder that cannot be written is a UserError."""
    timer = timer or StageTimer(quiet=True)
    with timer.stage("report"):
        try:
            built = build_report(out_dir, report_input(decision.patient, analysis, decision, key), fhir=fhir)
            _flush(built)
        except OSError as exc:
            if exc.errno not in UNWRITABLE:
                raise
            raise UserError(f"{out_dir}: cannot write the report: {exc.strerror}") from None
    fault_point("drafted")
    return Draft(key, decision.patient, analysis, decision, Path(out_dir), built)


def _flush(built: Path) -> None:
    """fsync the drafted report, removing it if that fails."""
    try:
        sync_tree(built)
    except BaseException:
        discard_report(built)
        raise


def record(session: Session, draft: Draft, case_ref: str | None = None) -> dict[str, Any]:
    """Store the finding, its cross-check and referral in `session`'s transaction (the caller commits,
    then `settle`s the draft). The database refusing a row is a UserError from `clinical.db.transaction`.

    `case_ref` names the study (default: the case folder's absolute path)."""
    fault_point("storing")
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
    fault_point("stored")
    return stored_summary(finding, check, referral) | {"finding_key": draft.key}
