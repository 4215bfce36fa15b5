"""The JSON API's request and response bodies (pydantic), separate from the ORM models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from neurotriage.web.patient_list import STATUSES


class PatientIn(BaseModel):
    """A new patient; values are validated as the CLI validates them."""

    name: str = Field(max_length=200)
    sex: str | None = None
    birth_date: str | None = Field(default=None, description="YYYY-MM-DD")
    city: str | None = None
    lat: str | None = None
    lon: str | None = None
    dominance: str | None = Field(default=None, description="left or right")
    mrn: str | None = Field(default=None, description="medical record number")
    mrn_issuer: str | None = Field(default=None, description="the MRN's issuer (DICOM IssuerOfPatientID)")


class PatientPatch(BaseModel):
    """Changes to a patient: a field left out keeps its value, null clears it (name cannot be cleared)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    sex: str | None = None
    birth_date: str | None = Field(default=None, description="YYYY-MM-DD")
    city: str | None = Field(default=None, description="a new city without lat/lon is geocoded offline (GeoNames)")
    lat: str | None = None
    lon: str | None = None
    dominance: str | None = Field(default=None, description="left or right")
    mrn: str | None = None
    mrn_issuer: str | None = None


class SymptomIn(BaseModel):
    """A symptom to record for a patient (knowledge-base code or SNOMED CT code)."""

    code: str
    side: str | None = None
    onset: str | None = None
    severity: str | None = None


class BreakGlassIn(BaseModel):
    """Why the user needs a record outside their care team (one line, recorded in the audit log)."""

    reason: str


class BreakGlassOut(BaseModel):
    """A break-glass grant: the patient's record is open to the user until `expires_at` (UTC)."""

    patient_id: int
    reason: str
    expires_at: datetime


class PatientOut(BaseModel):
    """A patient's own fields."""

    id: int
    name: str
    sex: str
    birth_date: str | None = Field(description="YYYY-MM-DD")
    city: str | None
    lat: float | None
    lon: float | None
    language_dominance: str
    mrn: str | None
    mrn_issuer: str | None
    confirmed: bool = Field(description="false while a patient created from a received study awaits a clinician")


class SymptomOut(BaseModel):
    """A symptom just recorded."""

    id: int
    code: str
    side: str | None
    severity: str | None


class ReportedSymptomOut(BaseModel):
    """A symptom on a patient's record."""

    id: int = Field(description="its number on the patient's record (DELETE removes it)")
    code: str
    name: str
    snomed_code: str | None
    side: str | None
    onset: str | None = Field(description="YYYY-MM-DD")
    severity: str | None


class StudyOut(BaseModel):
    """An MRI study of a patient."""

    id: int
    case: str
    synthetic_seed: int | None
    date: str | None = Field(description="YYYY-MM-DD")


class CrossCheckBrief(BaseModel):
    """The latest cross-check of a patient."""

    id: int
    verdict: str
    needs_review: bool


class StudyRef(BaseModel):
    """The study a finding belongs to, with its case ID."""

    id: int
    case: str


class ReferralRow(BaseModel):
    """One ranked recommendation of a referral."""

    rank: int
    doctor: str | None
    hospital: str | None
    specialty: str | None
    city: str | None
    wait_days: int | None
    score: float
    reasons: list[str]


class ReviewOut(BaseModel):
    """A clinician's sign-off of a finding; the newest is current, the older ones superseded."""

    id: int
    by: str
    at: str = Field(description="UTC, ISO 8601")
    status: str = Field(description="current or superseded")
    location_decision: str = Field(description="confirm or override")
    location: str = Field(description="the corrected location, or 'confirmed' (with what it confirmed)")
    location_hemisphere: str | None = Field(description="left, right, bilateral or midline; with a location")
    location_regions: list[str] | None = Field(description="atlas regions of the location reviewed")
    verdict_decision: str = Field(description="confirm or override")
    verdict: str = Field(description="the corrected verdict, or 'confirmed' (with what it confirmed)")
    comment: str


class DownloadOut(BaseModel):
    """A file of the finding's report folder, and where to download it."""

    label: str
    url: str


class LocationOut(BaseModel):
    """Where the tumour is: side, atlas regions and a sentence."""

    hemisphere: str | None = Field(description="left, right, bilateral or midline")
    regions: list[str]
    summary: str
    source: str = Field(description="automatic or clinician")


class AutomaticOut(BaseModel):
    """What localisation and the diagnosis's cross-check found, before any review."""

    location: LocationOut
    verdict: str | None


class CrossCheckOut(BaseModel):
    """A stored cross-check: its computed verdict, and when, why and for whom it was computed."""

    id: int
    verdict: str
    needs_review: bool
    summary: str | None
    origin: str = Field(description="diagnosis, review (for a location override) or rerun")
    requested_by: str | None
    at: str = Field(description="UTC, ISO 8601")


class CurrentOut(BaseModel):
    """A finding's current location and verdict: the newest review's overrides, else the computed ones."""

    location: LocationOut
    verdict: str | None
    verdict_source: str = Field(description="automatic or clinician")
    source: str = Field(description="clinician once a review overrides the location or the verdict")
    reviewed_by: str | None = Field(description="the username of the newest review's author")
    reviewed_at: str | None = Field(description="when the newest review was made (UTC)")
    needs_review: bool
    crosscheck: CrossCheckOut | None = Field(description="the cross-check the referral and computed verdict come from")


class FindingOut(BaseModel):
    """A finding in its current state: where the tumour is, the verdict, the referral and its status, reviews."""

    finding_id: int
    patient: PatientOut
    study: StudyRef
    model_id: str
    created_at: str
    summary: str = Field(description="the current location's sentence")
    centroid_mm: list[float] | None
    verdict: str | None = Field(description="the current verdict")
    crosscheck_summary: str | None
    needs_review: bool
    crosscheck_stale: bool = Field(description="symptoms or language dominance changed after the cross-check")
    referral_status: str
    referrals: list[ReferralRow] = Field(description="the referral for the current location")
    automatic: AutomaticOut
    current: CurrentOut
    reviews: list[ReviewOut] = Field(description="newest (current) first")
    downloads: list[DownloadOut]
    notice: str


class JobBrief(BaseModel):
    """A diagnosis job as listed on its patient."""

    id: int
    status: str
    upload: str
    finding_id: int | None
    same_file_as: list[int] = Field(description="the patient's other jobs of the same uploaded file")
    same_file_elsewhere: int = Field(description="how many jobs of other patients had the same file")


class FollowUpPoint(BaseModel):
    """One study of a follow-up: its newest finding's volumes and their change from the study before."""

    study_id: int
    finding_id: int
    date: str = Field(description="YYYY-MM-DD: the study's date, else the day it was added (dated_by)")
    dated_by: str = Field(description="'study' (its own date) or 'upload' (no study date: when it was added)")
    volumes_ml: dict[str, float]
    change_ml: dict[str, float] | None = Field(description="from the study before; null for the first")
    change_pct: dict[str, float | None] | None = Field(description="null for a compartment that was empty before")
    crossed: dict[str, str | None] | None = Field(
        description="'progression' at +40 % or more, 'response' at -65 % or less (volumetric, not RANO)"
    )


class FollowUpOut(BaseModel):
    """Volumes per compartment over a patient's studies, oldest first (two or more studies with findings)."""

    compartments: dict[str, str] = Field(description="volume key -> its name")
    points: list[FollowUpPoint]
    progression_pct: float
    response_pct: float
    note: str


class PatientDetailOut(PatientOut):
    """A patient with symptoms, studies, findings, referrals, jobs and follow-up volumetry."""

    symptoms: list[ReportedSymptomOut]
    studies: list[StudyOut]
    latest_crosscheck: CrossCheckBrief | None
    findings: list[FindingOut]
    jobs: list[JobBrief]
    follow_up: FollowUpOut | None = Field(description="null until two studies have findings")
    notice: str


class PatientRowOut(PatientOut):
    """A patient as listed: its own fields, status and newest study."""

    status: str = Field(description="one of: " + ", ".join(STATUSES))
    last_study: str | None = Field(description="YYYY-MM-DD: the newest study's date, else the day it was added")


class PatientListOut(BaseModel):
    """One page of the patients the user may see that match the search, and the count of all matches."""

    patients: list[PatientRowOut]
    total: int
    page: int
    per_page: int
    pages: int
    sort: str
    order: str


class StageOut(BaseModel):
    """One stage of a diagnosis job."""

    name: str
    state: str = Field(description="running or done")
    seconds: float | None


class JobOut(BaseModel):
    """A diagnosis job's status and per-stage progress."""

    id: int
    patient_id: int
    status: str
    upload: str
    stages: list[StageOut]
    finding_id: int | None
    error: str | None
    report_url: str | None


class AuditEventOut(BaseModel):
    """Who viewed or changed what, and when."""

    at: str
    user: str
    action: str
    target: str
    patient_id: int | None = Field(description="the patient the event concerns, if any")
    detail: dict[str, Any] | None


class ListenerSettingsOut(BaseModel):
    """The DICOM listener's configured settings (it runs as its own process, `command`)."""

    command: str
    allowed_aes: list[str] = Field(description="calling AE titles accepted; empty: any")
    send_to: str | None = Field(description="the default destination of results, AET@host:port")
    stable_s: int = Field(description="seconds without a new instance after which a study is complete")


class ReceivedStudyOut(BaseModel):
    """A study the DICOM listener received, and what became of it."""

    study_uid: str
    state: str = Field(description="receiving, complete, queued, diagnosed, sent or failed")
    patient_id: str = Field(description="the DICOM PatientID of the first instance")
    patient_name: str
    other_patient_ids: list[str] = Field(description="further PatientIDs seen in the study (it is then refused)")
    instances: int
    series: int
    calling_aes: list[str]
    first_arrival: str | None
    last_arrival: str | None
    error: str | None
    clinical_patient_id: int | None = Field(description="the patient it was filed under, once handed on")
    finding_id: int | None = Field(description="its newest finding, once diagnosed")


class OutboxItemOut(BaseModel):
    """A set of DICOM objects waiting to be sent (or failed for good)."""

    item: str
    state: str = Field(description="queued or failed")
    files: list[str]
    delivered: list[str]
    attempts: int
    queued_at: datetime
    next_attempt: datetime | None
    last_error: str | None


class DestinationOut(BaseModel):
    """A destination's outbox: counts by state, and the items not sent."""

    destination: str
    queued: int
    sent: int
    failed: int
    items: list[OutboxItemOut]


class NodeEventOut(BaseModel):
    """One event of the DICOM node's log (a rejected association)."""

    at: str
    kind: str
    detail: str


class DicomNodeOut(BaseModel):
    """The DICOM node: listener settings, received studies (newest first) with a count per state, destinations."""

    listener: ListenerSettingsOut
    counts: dict[str, int]
    studies: list[ReceivedStudyOut]
    destinations: list[DestinationOut]
    events: list[NodeEventOut]
