"""ORM mappings the web app adds to the clinical database: users, jobs, audit log.

They share the clinical declarative Base (one metadata, one migration history); their tables
come from migration 0003.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from neurotriage.clinical.models import Base, one_of, utcnow

ROLES = ("clinician", "admin", "read_only")
ACCESS_KINDS = ("team", "break_glass")
JOB_STATES = ("queued", "running", "done", "failed")


class User(Base):
    """A person who may sign in; only a scrypt hash of the password is stored."""

    __tablename__ = "users"
    __table_args__ = (one_of("role", ROLES, "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(16), default="clinician")
    # Sessions carry the generation they began in; signing out or a new password increments it (0010).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A disabled user cannot sign in and their sessions are refused; their records keep their name (0011).
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PatientAccess(Base):
    """A user's access to a patient: care-team membership, or a time-limited break-glass grant (0011)."""

    __tablename__ = "patient_access"
    __table_args__ = (one_of("kind", ACCESS_KINDS, "kind"), UniqueConstraint("patient_id", "user_id", "kind"))

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Why a break-glass grant was taken, in the user's words; None for care-team membership.
    reason: Mapped[str | None] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)


class Job(Base):
    """A background diagnosis of an uploaded case, with its per-stage progress."""

    __tablename__ = "jobs"
    __table_args__ = (one_of("status", JOB_STATES, "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The study the upload queued (migration 0008); None for jobs from before the study queue.
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    upload_name: Mapped[str] = mapped_column(String(300))
    work_dir: Mapped[str] = mapped_column(String(1000))
    # [{"name", "state": running|done, "seconds"}] in the order the stages ran.
    stages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the uploaded file: the same upload twice is flagged (0012).
    upload_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEvent(Base):
    """Who viewed or changed what, and when; the username is kept even if the user is deleted."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None]
    # The patient the event concerns, for filtering; not a foreign key, so the log outlives the patient (0011).
    patient_id: Mapped[int | None] = mapped_column(index=True)
