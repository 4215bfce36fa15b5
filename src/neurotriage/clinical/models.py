"""ORM mappings of the clinical database (SQLAlchemy 2 typed style).

Enumerations are short strings guarded by CHECK constraints rather than database ENUM types, so
SQLite and PostgreSQL share one schema and one migration. Timestamps are naive UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    FetchedValue,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from neurotriage.clinical.bitsets import EXPERTISE_NAMES, bits_sql
from neurotriage.folding import fold

SEXES = ("female", "male", "other", "unknown")
DOMINANCE = ("left", "right")
SYMPTOM_SIDES = ("left", "right", "bilateral")
SEVERITIES = ("mild", "moderate", "severe")
LATERALITIES = ("contralateral", "ipsilateral", "dominant", "non_dominant", "either", "non_localising")
SPECIALTIES = ("neurosurgery", "neuro-oncology", "radiation oncology", "neurology", "neuroradiology")
CAPABILITIES = (
    "intraoperative_mri",
    "awake_craniotomy",
    "stereotactic_radiosurgery",
    "proton_therapy",
    "neuro_icu",
)

# Stable constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Current UTC time without tzinfo (SQLite keeps no zone, so none is stored anywhere)."""
    return datetime.now(UTC).replace(tzinfo=None)


def one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    """CHECK constraint limiting `column` to `values`."""
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=name)


def _where(condition: str) -> dict[str, Any]:
    """The keyword arguments of a partial index with this condition, on SQLite and PostgreSQL."""
    clause = text(condition)
    return {"sqlite_where": clause, "postgresql_where": clause}


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention and JSON column types."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Patient(Base):
    """A person being triaged, with home location and language dominance."""

    __tablename__ = "patients"
    __table_args__ = (
        one_of("sex", SEXES, "sex"),
        one_of("language_dominance", DOMINANCE, "dominance"),
        # CSV import looks up probable duplicates (same name and birth date) by birth date.
        Index("ix_patients_birth_date", "birth_date"),
        # One patient per MRN and issuer, and per MRN without an issuer; patients without an MRN are
        # not indexed. The first index also serves lookups by MRN alone.
        Index("uq_patients_mrn", "mrn", "mrn_issuer", unique=True, **_where("mrn IS NOT NULL")),
        Index("uq_patients_mrn_no_issuer", "mrn", unique=True, **_where("mrn IS NOT NULL AND mrn_issuer IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    sex: Mapped[str] = mapped_column(String(16), default="unknown")
    birth_date: Mapped[date | None] = mapped_column(Date)
    city: Mapped[str | None] = mapped_column(String(120))
    lat: Mapped[float | None]
    lon: Mapped[float | None]
    language_dominance: Mapped[str] = mapped_column(String(8), default="left")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Medical record number and its issuer (DICOM PatientID and IssuerOfPatientID).
    mrn: Mapped[str | None] = mapped_column(String(64))
    mrn_issuer: Mapped[str | None] = mapped_column(String(64))
    # False for a patient created from a received study until a clinician confirms the identity.
    confirmed: Mapped[bool] = mapped_column(default=True, server_default=true())
    # When symptoms or language dominance last changed: a cross-check made before it is stale (0012).
    clinical_changed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The name in lower case without accents, for search; kept in step with name on every write (0012).
    name_folded: Mapped[str] = mapped_column(String(200), index=True, default="", server_default="")


class Study(Base):
    """One MRI study of a patient: a BraTS case folder or case ID."""

    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("patient_id", "case_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    case_ref: Mapped[str] = mapped_column(String(500))
    synthetic_seed: Mapped[int | None]
    study_date: Mapped[date | None] = mapped_column(Date)
    # Why the last diagnosis of this study failed (batch runs go on past a failure).
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The diagnosis queue (diagnosis/queue.py): when the study joined it (None once diagnosed or
    # parked), diagnoses started, and the claim of the worker diagnosing it: a fresh token per
    # claim, the worker (host:pid) and when its lease runs out unless renewed. A study that failed
    # too often is parked with its last error and no longer claimed.
    queued_at: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    claim_token: Mapped[str | None] = mapped_column(String(36))
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    parked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Symptom(Base):
    """A presenting symptom of the knowledge base, keyed by the project's slug."""

    __tablename__ = "symptoms"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    snomed_code: Mapped[str | None] = mapped_column(String(20), index=True)
    needs_cortex: Mapped[bool] = mapped_column(default=False)


class PatientSymptom(Base):
    """A symptom a patient reported, with side, onset and severity where known."""

    __tablename__ = "patient_symptoms"
    __table_args__ = (
        one_of("side", SYMPTOM_SIDES, "side"),
        one_of("severity", SEVERITIES, "severity"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    symptom_id: Mapped[int] = mapped_column(ForeignKey("symptoms.id"))
    side: Mapped[str | None] = mapped_column(String(16))
    onset_date: Mapped[date | None] = mapped_column(Date)
    severity: Mapped[str | None] = mapped_column(String(16))
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BrainRegion(Base):
    """A region of the shared localisation vocabulary (lobe or eloquent/sub-lobar area)."""

    __tablename__ = "brain_regions"
    __table_args__ = (one_of("kind", ("lobe", "eloquent"), "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    snomed_code: Mapped[str | None] = mapped_column(String(20))


class SymptomRegionRule(Base):
    """Symptom -> region with a laterality rule and its source; no region when non-localising."""

    __tablename__ = "symptom_region_rules"
    __table_args__ = (one_of("laterality", LATERALITIES, "laterality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    symptom_id: Mapped[int] = mapped_column(ForeignKey("symptoms.id", ondelete="CASCADE"), index=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("brain_regions.id"))
    laterality: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)


class Hospital(Base):
    """A hospital with its location and treatment capabilities."""

    __tablename__ = "hospitals"
    __table_args__ = (Index("ix_hospitals_lat_lon", "lat", "lon"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    city: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(120), default="")
    lat: Mapped[float]
    lon: Mapped[float]
    capabilities: Mapped[list[str]] = mapped_column(default=list)


REFERRAL_COLUMNS = ("lat_band", "accepting", "specialty", "lon", "lat", "wait_days", "expertise_bits")
REFERRAL_COLUMNS += ("capability_bits", "hospital_id", "id", "name", "expertise")


class Doctor(Base):
    """A doctor at a hospital: specialty, regions of expertise, acceptance and typical wait."""

    __tablename__ = "doctors"
    __table_args__ = (
        one_of("specialty", SPECIALTIES, "specialty"),
        Index("ix_doctors_specialty_accepting", "specialty", "accepting"),
        # A search box is a few short range scans of this index, which holds every column the referral
        # search reads (at 100,000 doctors, the 6,251-candidate box of Leeds ranked in 8 ms on SQLite,
        # against 14 ms when the doctors of each hospital in the box were probed in turn).
        Index("ix_doctors_referral", *REFERRAL_COLUMNS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    hospital_id: Mapped[int] = mapped_column(ForeignKey("hospitals.id", ondelete="CASCADE"), index=True)
    specialty: Mapped[str] = mapped_column(String(32))
    # jsonb on PostgreSQL: a json column cannot be part of a btree index (ix_doctors_referral).
    expertise: Mapped[list[str]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=list)
    # The expertise as bits of EXPERTISE_NAMES, derived by the database (bitsets.py).
    expertise_bits: Mapped[int] = mapped_column(Computed(bits_sql("expertise", EXPERTISE_NAMES), persisted=True))
    # Copies of the hospital's location, its whole degree of latitude (floor) and capabilities (bits of
    # CAPABILITIES), written by triggers on both tables (migration 0006), never by the application.
    lat: Mapped[float | None] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    lon: Mapped[float | None] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    lat_band: Mapped[int | None] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    capability_bits: Mapped[int | None] = mapped_column(server_default=FetchedValue(), server_onupdate=FetchedValue())
    accepting: Mapped[bool] = mapped_column(default=True)
    wait_days: Mapped[int] = mapped_column(default=0)


class Finding(Base):
    """An imaging result: the segmentation of a study and where the tumour lies."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    segmentation_path: Mapped[str | None] = mapped_column(String(1000))
    # Where report.json, report.html and the figures were written; None when no report was made.
    report_dir: Mapped[str | None] = mapped_column(String(1000))
    # Allocated before the finding is stored, so its report can be rendered and named first.
    key: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    locate: Mapped[dict[str, Any]]
    model_id: Mapped[str] = mapped_column(String(200))
    # Software version, model SHA-256 and input files with checksums.
    provenance: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CrossCheckRecord(Base):
    """A stored symptom/imaging cross-check with everything it was computed from."""

    __tablename__ = "crosschecks"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None]
    needs_review: Mapped[bool]
    inputs: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any]]
    # diagnosis | review (a clinician's override recomputed it) | rerun (asked for after a change) (0012).
    origin: Mapped[str] = mapped_column(String(16), default="diagnosis", server_default="diagnosis")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReferralRecord(Base):
    """A stored referral ranking with its inputs, so the decision can be explained later."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"))
    crosscheck_id: Mapped[int | None] = mapped_column(ForeignKey("crosschecks.id", ondelete="SET NULL"))
    basis: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any]]
    # diagnosis | review (a clinician's override recomputed it) | rerun (asked for after a change) (0012).
    origin: Mapped[str] = mapped_column(String(16), default="diagnosis", server_default="diagnosis")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


@event.listens_for(Patient, "before_insert")
@event.listens_for(Patient, "before_update")
def _fold_name(_mapper, _connection, patient: Patient) -> None:
    """Keep the searchable folded name in step with the name (bulk INSERTs set it themselves)."""
    patient.name_folded = fold(patient.name)


DECISIONS = ("confirm", "override")


class Review(Base):
    """A clinician's sign-off on a finding: location and verdict confirmed or overridden."""

    __tablename__ = "reviews"
    __table_args__ = (
        one_of("location_decision", DECISIONS, "location_decision"),
        one_of("verdict_decision", DECISIONS, "verdict_decision"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id", ondelete="CASCADE"), index=True)
    # The web app's users table (migration 0003); a plain key here, so this layer needs no web import.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    location_decision: Mapped[str] = mapped_column(String(16))
    location_override: Mapped[str | None] = mapped_column(String(300))
    # A structured location override: hemisphere and atlas regions (0012); None when confirmed.
    location_hemisphere: Mapped[str | None] = mapped_column(String(16))
    location_regions: Mapped[list[str] | None] = mapped_column(JSON)
    verdict_decision: Mapped[str] = mapped_column(String(16))
    verdict_override: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
