"""Who may see and change which patient.

Admins see every patient. Clinicians and read-only users see the patients whose care team they are in,
and those they hold an unexpired break-glass grant for. Read-only users change no record (taking a
break-glass grant is access, not a change to the record). A finding or a job belongs to its patient.
Every break-glass grant and every care-team change is audited in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends
from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from neurotriage.clinical import intake
from neurotriage.clinical.models import Finding, Patient, Study, utcnow
from neurotriage.errors import Forbidden, NotFound, UserError
from neurotriage.web.deps import CurrentUser, audit
from neurotriage.web.jobs import get_job
from neurotriage.web.models import Job, PatientAccess, User
from neurotriage.web.views import get_finding

BREAK_GLASS = timedelta(hours=4)
REASON_LEN = 500
READ_ONLY = "read-only users cannot change records"
TEAM_ROLES = ("clinician", "read_only")


def can_write(user: User | None) -> bool:
    """Whether the signed-in user may change records: everyone but read-only users."""
    return user is not None and user.role != "read_only"


def writer(user: CurrentUser) -> User:
    """The signed-in user when they may change records; a read-only user is refused (403)."""
    if not can_write(user):
        raise Forbidden(READ_ONLY)
    return user


WriterUser = Annotated[User, Depends(writer)]


def _unexpired(now: datetime | None) -> ColumnElement[bool]:
    return or_(PatientAccess.expires_at.is_(None), PatientAccess.expires_at > (now or utcnow()))


def visible(user: User, now: datetime | None = None) -> ColumnElement[bool]:
    """The condition on Patient of the patients the user may see, for a query's WHERE."""
    if user.role == "admin":
        return true()
    reachable = select(PatientAccess.patient_id).where(PatientAccess.user_id == user.id, _unexpired(now))
    return Patient.id.in_(reachable)


def has_access(session: Session, user: User, patient_id: int, now: datetime | None = None) -> bool:
    """Whether the user may see the patient: an admin, on its care team, or holding an unexpired grant."""
    if user.role == "admin":
        return True
    grant = select(PatientAccess.id).where(
        PatientAccess.user_id == user.id, PatientAccess.patient_id == patient_id, _unexpired(now)
    )
    return session.scalar(grant.limit(1)) is not None


def require_patient(session: Session, user: User, patient_id: int, now: datetime | None = None) -> Patient:
    """The patient when the user may see it; NotFound when there is none, Forbidden when out of reach."""
    patient = intake.get_patient(session, patient_id)
    if not has_access(session, user, patient_id, now):
        raise Forbidden(f"patient {patient_id}: not in your care team", patient_id=patient_id)
    return patient


def require_finding(session: Session, user: User, finding_id: int) -> tuple[Finding, Study]:
    """The finding and its study when the user may see its patient; refused as `require_patient` refuses."""
    finding, study = get_finding(session, finding_id)
    require_patient(session, user, study.patient_id)
    return finding, study


def require_job(session: Session, user: User, job_id: int) -> Job:
    """The job when the user may see its patient; refused as `require_patient` refuses."""
    job = get_job(session, job_id)
    require_patient(session, user, job.patient_id)
    return job


def _grant_of(session: Session, patient_id: int, user_id: int, kind: str) -> PatientAccess | None:
    return session.scalar(
        select(PatientAccess).where(
            PatientAccess.patient_id == patient_id, PatientAccess.user_id == user_id, PatientAccess.kind == kind
        )
    )


def _user_named(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None:
        raise NotFound(f"user {username.strip()!r}: no such user", field="username")
    return user


def _name(by: User | None) -> str:
    """Who granted access: the admin's username, '-' when no user did (the command line)."""
    return by.username if by else "-"


def _join(session: Session, patient_id: int, member: User, by: User | None) -> bool:
    if _grant_of(session, patient_id, member.id, "team") is not None:
        return False
    session.add(PatientAccess(patient_id=patient_id, user_id=member.id, kind="team", granted_by=_name(by)))
    audit(session, by, "team_add", f"patient:{patient_id}", {"user": member.username})
    session.flush()
    return True


def add_to_team(session: Session, patient_id: int, username: str, by: User | None) -> bool:
    """Put a clinician or read-only user on the patient's care team; False when already on it."""
    intake.get_patient(session, patient_id)
    member = _user_named(session, username)
    if member.role not in TEAM_ROLES:
        raise UserError(f"user {member.username!r}: an admin sees every patient without a care team", field="username")
    return _join(session, patient_id, member, by)


def join_new_patient(session: Session, user: User, patient_id: int) -> None:
    """A clinician who adds a patient joins its care team."""
    if user.role == "clinician":
        _join(session, patient_id, user, user)


def remove_from_team(session: Session, patient_id: int, username: str, by: User | None) -> None:
    """Take a user off the patient's care team (a break-glass grant they hold runs out on its own)."""
    intake.get_patient(session, patient_id)
    member = _user_named(session, username)
    grant = _grant_of(session, patient_id, member.id, "team")
    if grant is None:
        raise UserError(f"user {member.username!r}: not on the care team of patient {patient_id}", field="username")
    session.delete(grant)
    audit(session, by, "team_remove", f"patient:{patient_id}", {"user": member.username})
    session.flush()


def care_team(session: Session, patient_id: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The patient's care team, then its unexpired break-glass grants, each by username."""
    rows = session.execute(
        select(PatientAccess, User)
        .join(User, User.id == PatientAccess.user_id)
        .where(PatientAccess.patient_id == patient_id, _unexpired(now))
        .order_by(PatientAccess.kind.desc(), User.username)  # 'team' before 'break_glass'
    )
    return [
        {
            "username": user.username,
            "role": user.role,
            "kind": grant.kind,
            "granted_by": grant.granted_by,
            "since": grant.created_at.isoformat(timespec="seconds"),
            "until": grant.expires_at.isoformat(timespec="seconds") if grant.expires_at else None,
            "reason": grant.reason,
        }
        for grant, user in rows
    ]


def check_reason(reason: str) -> str:
    """A break-glass reason: required, one line, at most REASON_LEN characters."""
    text = reason.strip()
    if not text:
        raise UserError("reason: say why you need this patient's record", field="reason")
    if len(text.splitlines()) > 1:
        raise UserError("reason: one line only", field="reason")
    if len(text) > REASON_LEN:
        raise UserError(f"reason: at most {REASON_LEN} characters", field="reason")
    return text


def break_glass(
    session: Session, user: User, patient_id: int, reason: str, now: datetime | None = None
) -> PatientAccess:
    """Open the patient's record to the user for BREAK_GLASS from now, for the reason given (audited with it);
    taking it again renews it."""
    text = check_reason(reason)
    intake.get_patient(session, patient_id)
    now = now or utcnow()
    grant = _grant_of(session, patient_id, user.id, "break_glass")
    if grant is None:
        grant = PatientAccess(patient_id=patient_id, user_id=user.id, kind="break_glass")
        session.add(grant)
    grant.reason, grant.granted_by, grant.created_at, grant.expires_at = text, user.username, now, now + BREAK_GLASS
    audit(
        session, user, "break_glass", f"patient:{patient_id}", {"reason": text, "until": grant.expires_at.isoformat()}
    )
    session.flush()
    return grant
