"""What the pages and the API show, read from the database and the report folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage import NOTICE
from neurotriage.clinical import intake
from neurotriage.clinical.models import Finding, ReferralRecord, Study
from neurotriage.clinical.scoring import Recommendation
from neurotriage.errors import UserError
from neurotriage.imaging.naming import split_name
from neurotriage.web.followup import follow_up
from neurotriage.web.jobs import duplicates, job_state
from neurotriage.web.models import Job
from neurotriage.web.report_files import download_links
from neurotriage.web.review_state import (
    FindingState,
    automatic_json,
    current_json,
    differs_from_diagnosis,
    finding_state,
    review_history,
)


def get_finding(session: Session, finding_id: int) -> tuple[Finding, Study]:
    """The finding and its study, or a UserError."""
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise UserError(f"finding {finding_id}: no such finding")
    return finding, session.get(Study, finding.study_id)


def case_label(finding: Finding, study: Study) -> str:
    """The case ID (from the segmentation's BraTS file name), else the case folder's name."""
    parsed = split_name(Path(finding.segmentation_path).name) if finding.segmentation_path else None
    return parsed[1] if parsed else Path(study.case_ref).name


def referral_rows(record: ReferralRecord) -> list[dict[str, Any]]:
    """A stored referral's ranked recommendations, flattened for a table."""
    stored = (Recommendation.model_validate(r) for r in record.result.get("recommendations") or [])
    return [
        {
            "rank": ref.rank,
            "doctor": ref.doctor.name,
            "specialty": ref.doctor.specialty,
            "wait_days": ref.doctor.wait_days,
            "hospital": ref.hospital.name,
            "city": ref.hospital.city,
            "score": ref.score,
            "reasons": ref.reasons,
        }
        for ref in stored
    ]


def referral_status(state: FindingState) -> str:
    """'final', or why the referral is provisional: an unconfirmed patient, a stale cross-check, or a
    verdict awaiting a clinician's sign-off."""
    if not state.patient.confirmed:
        return "provisional: the patient is not confirmed yet"
    if state.stale:
        return "provisional: symptoms or language dominance changed after the cross-check; re-run it"
    return "provisional: awaiting clinician sign-off" if state.needs_review else "final"


def finding_view(session: Session, finding_id: int) -> dict[str, Any]:
    """Everything the report page shows about one finding, in its current state under the clinicians'
    reviews (`review_state`), with the referral's status.

    A finding whose cross-check needs review (partially concordant, discordant) has a provisional
    referral until a clinician signs it off or overrides the verdict; so does a finding whose cross-check
    is stale, and any finding of an unconfirmed patient until the patient is confirmed; otherwise the
    referral is final as computed."""
    finding, study = get_finding(session, finding_id)
    state = finding_state(session, finding)
    check, referral = state.crosscheck, state.referral
    return {
        "finding_id": finding.id,
        "patient": intake.patient_summary(state.patient),
        "study": {"id": study.id, "case": case_label(finding, study)},
        "model_id": finding.model_id,
        "created_at": finding.created_at.isoformat(timespec="seconds"),
        "summary": state.location.summary or "No tumour summary available.",
        "centroid_mm": finding.locate.get("centroid_mm"),
        "verdict": state.verdict,
        "crosscheck_summary": check.result.get("summary") if check else None,
        "needs_review": state.needs_review,
        "crosscheck_stale": state.stale,
        "referral_status": referral_status(state),
        "referrals": referral_rows(referral) if referral else [],
        "automatic": automatic_json(state),
        "current": current_json(state),
        "reviews": review_history(session, finding.id),
        "downloads": download_links(finding.id, finding.report_dir, superseded=differs_from_diagnosis(state)),
        "notice": NOTICE,
    }


def _job_row(session: Session, job: Job) -> dict[str, Any]:
    state = job_state(session, job)
    same, elsewhere = duplicates(session, job)
    return {"id": job.id, "status": state.status, "upload": job.upload_name, "finding_id": state.finding_id,
            "same_file_as": same, "same_file_elsewhere": elsewhere}  # fmt: skip


def patient_view(session: Session, patient_id: int) -> dict[str, Any]:
    """The patient page: demographics, symptoms, studies, findings, referrals and jobs."""
    detail = intake.patient_detail(session, intake.get_patient(session, patient_id))
    findings = session.scalars(
        select(Finding).join(Study, Study.id == Finding.study_id).where(Study.patient_id == patient_id)
        .order_by(Finding.id.desc())
    )  # fmt: skip
    jobs = session.scalars(select(Job).where(Job.patient_id == patient_id).order_by(Job.id.desc()))
    return detail | {
        "findings": [finding_view(session, f.id) for f in findings],
        "jobs": [_job_row(session, j) for j in jobs],
        "follow_up": follow_up(session, patient_id),
        "notice": NOTICE,
    }
