"""What the pages and the API show, read from the database and the report folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage import NOTICE
from neurotriage.clinical import intake
from neurotriage.clinical.models import CrossCheckRecord, Finding, ReferralRecord, Study
from neurotriage.clinical.scoring import Recommendation
from neurotriage.errors import UserError
from neurotriage.imaging.naming import split_name
from neurotriage.web.followup import follow_up
from neurotriage.web.jobs import job_state
from neurotriage.web.models import Job, Review, User
from neurotriage.web.report_files import download_links


def get_finding(session: Session, finding_id: int) -> tuple[Finding, Study]:
    """The finding and its study, or a UserError."""
    finding = session.get(Finding, finding_id)
    if finding is None:
        raise UserError(f"finding {finding_id}: no such finding")
    return finding, session.get(Study, finding.study_id)


def reviews(session: Session, finding_id: int) -> list[dict[str, Any]]:
    """The sign-offs of a finding, newest first, with the reviewer's name."""
    rows = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.user_id)
        .where(Review.finding_id == finding_id)
        .order_by(Review.id.desc())
    )
    return [
        {
            "id": r.id,
            "by": name or "(deleted user)",
            "at": r.created_at.isoformat(timespec="seconds"),
            "location": r.location_override if r.location_decision == "override" else "confirmed",
            "verdict": r.verdict_override if r.verdict_decision == "override" else "confirmed",
            "comment": r.comment,
        }
        for r, name in rows
    ]


def case_label(finding: Finding, study: Study) -> str:
    """The case ID (from the segmentation's BraTS file name), else the case folder's name."""
    parsed = split_name(Path(finding.segmentation_path).name) if finding.segmentation_path else None
    return parsed[1] if parsed else Path(study.case_ref).name


def _crosscheck_of(session: Session, finding_id: int) -> CrossCheckRecord | None:
    return session.scalar(
        select(CrossCheckRecord).where(CrossCheckRecord.finding_id == finding_id).order_by(CrossCheckRecord.id.desc())
    )


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
            "reasons": ref.reasons,
        }
        for ref in stored
    ]


def finding_view(session: Session, finding_id: int) -> dict[str, Any]:
    """Everything the report page shows about one finding, with the referral's status.

    A finding whose cross-check needs review (discordant) has a provisional referral until a
    clinician signs it off, and so does any finding of an unconfirmed patient until the patient is
    confirmed; otherwise the referral is final as computed."""
    finding, study = get_finding(session, finding_id)
    check = _crosscheck_of(session, finding.id)
    referral = session.scalar(
        select(ReferralRecord).where(ReferralRecord.finding_id == finding.id).order_by(ReferralRecord.id.desc())
    )
    signed = reviews(session, finding.id)
    needs_review = bool(check and check.needs_review)
    patient = intake.patient_summary(intake.get_patient(session, study.patient_id))
    status = "provisional: awaiting clinician sign-off" if needs_review and not signed else "final"
    return {
        "finding_id": finding.id,
        "patient": patient,
        "study": {"id": study.id, "case": case_label(finding, study)},
        "model_id": finding.model_id,
        "created_at": finding.created_at.isoformat(timespec="seconds"),
        "summary": finding.locate.get("summary") or "No tumour summary available.",
        "centroid_mm": finding.locate.get("centroid_mm"),
        "verdict": check.verdict if check else None,
        "crosscheck_summary": check.result.get("summary") if check else None,
        "needs_review": needs_review,
        "referral_status": status if patient["confirmed"] else "provisional: the patient is not confirmed yet",
        "referrals": referral_rows(referral) if referral else [],
        "reviews": signed,
        "downloads": download_links(finding.id, finding.report_dir),
        "notice": NOTICE,
    }


def _job_row(session: Session, job: Job) -> dict[str, Any]:
    state = job_state(session, job)
    return {"id": job.id, "status": state.status, "upload": job.upload_name, "finding_id": state.finding_id}


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
