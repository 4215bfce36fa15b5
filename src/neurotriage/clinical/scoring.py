"""Scores and reasons of referral candidates: specialty, expertise, capabilities, distance, wait.

Runs on every candidate the SQL filter lets through, so the per-doctor work is kept small:
hospital facts (distance, capabilities) are computed once per hospital, and a doctor's expertise
is matched on its stored JSON text. Reasons are written only for the recommendations shown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import NamedTuple

from pydantic import BaseModel, Field

from neurotriage.vocabulary import area_name

POINTS = {"specialty": 30.0, "expertise": 25.0, "needs": 20.0, "distance": 15.0, "wait": 10.0}
DISTANCE_HALF_KM = 100.0  # distance points halve at this distance
WAIT_ZERO_DAYS = 60  # no waiting-time points from this wait on

# Specialty fit: an imaged tumour goes to surgeons and oncologists; symptoms alone first need a
# neurologist to examine and image. Specialties absent from a table are filtered out in SQL.
SPECIALTY_FIT = {
    "imaging": {"neurosurgery": 1.0, "neuro-oncology": 0.8, "radiation oncology": 0.5},
    "symptoms": {"neurology": 1.0, "neurosurgery": 0.8, "neuroradiology": 0.6, "neuro-oncology": 0.5},
}
SPECIALTY_WHY = {
    "neurosurgery": "resection and biopsy",
    "neuro-oncology": "medical treatment of brain tumours",
    "radiation oncology": "radiotherapy",
    "neurology": "examination and work-up of focal symptoms",
    "neuroradiology": "imaging to find the cause",
}
# Each need as its reason reads: what is checked, and in brackets why the case needs it (the
# full why, naming the regions, is stored with the referral's inputs).
NEED_LABELS = {
    "awake_craniotomy": ("awake craniotomy at the hospital", "eloquent cortex"),
    "brainstem_expertise": ("brainstem expertise", "brainstem involved"),
    "neuro_oncology": ("neuro-oncologist", "enhancing tumour"),
}


class DoctorRef(BaseModel):
    """The recommended doctor as the ranking saw them."""

    id: int | None = None
    name: str
    specialty: str | None = None
    expertise: list[str] = Field(default_factory=list)
    wait_days: int | None = None


class HospitalRef(BaseModel):
    """The recommended doctor's hospital."""

    id: int | None = None
    name: str
    city: str | None = None
    country: str | None = None
    capabilities: list[str] = Field(default_factory=list)


class Recommendation(BaseModel):
    """One ranked doctor and hospital, the score's parts and the reasons behind them."""

    rank: int = Field(ge=1)
    score: float
    doctor: DoctorRef
    hospital: HospitalRef
    distance_km: float | None = None
    components: dict[str, float] = Field(default_factory=dict)
    reasons: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """A region to find expertise for, with its weight in the expertise score."""

    name: str
    side: str
    weight: float


@dataclass(frozen=True)
class Need:
    """A capability the case needs, and why."""

    code: str
    why: str


@dataclass(frozen=True)
class Site:
    """A hospital in the search area, with its distance from the patient's home."""

    id: int
    name: str
    city: str
    country: str
    capabilities: tuple[str, ...]
    distance_km: float | None
    distance_points: float = field(init=False)

    def __post_init__(self) -> None:
        # Full points at the door, half at DISTANCE_HALF_KM, none without a home location.
        km = self.distance_km
        points = 0.0 if km is None else POINTS["distance"] / (1 + km / DISTANCE_HALF_KM)
        object.__setattr__(self, "distance_points", points)


class Candidate(NamedTuple):
    """One doctor row from the SQL filter; expertise is the stored JSON list as text."""

    id: int
    name: str
    hospital_id: int
    specialty: str
    wait_days: int
    expertise_json: str


def _quoted(name: str) -> str:
    # Region names appear quoted in the JSON text, so '"name"' matches exactly that name.
    return json.dumps(name)


class Scorer:
    """Scores candidates for one referral request."""

    def __init__(self, basis: str, targets: tuple[Target, ...], needs: tuple[Need, ...]) -> None:
        self.specialty_points = {k: POINTS["specialty"] * fit for k, fit in SPECIALTY_FIT[basis].items()}
        self.targets, self.needs = targets, needs
        self.keys = [(_quoted(t.name), t.weight) for t in targets]
        self.total_weight = sum(t.weight for t in targets)

    def satisfies(self, need: str, doctor: Candidate, site: Site) -> bool:
        """Whether this doctor at this hospital meets one need."""
        if need == "awake_craniotomy":
            return "awake_craniotomy" in site.capabilities
        if need == "brainstem_expertise":
            return _quoted("brainstem") in doctor.expertise_json
        return doctor.specialty == "neuro-oncology"

    def meets_all(self, doctor: Candidate, site: Site) -> bool:
        """Whether this doctor at this hospital meets every need of the case."""
        return all(self.satisfies(n.code, doctor, site) for n in self.needs)

    def components(self, doctor: Candidate, site: Site) -> dict[str, float]:
        """Points per component; the score is their sum."""
        covered = sum(weight for key, weight in self.keys if key in doctor.expertise_json)
        met = sum(1 for n in self.needs if self.satisfies(n.code, doctor, site))
        return {
            "specialty": self.specialty_points[doctor.specialty],
            "expertise": POINTS["expertise"] * covered / self.total_weight if self.total_weight else 0.0,
            "needs": POINTS["needs"] * met / len(self.needs) if self.needs else POINTS["needs"],
            "distance": site.distance_points,
            "wait": POINTS["wait"] * max(0.0, 1 - doctor.wait_days / WAIT_ZERO_DAYS),
        }

    def reasons(self, doctor: Candidate, site: Site, parts: dict[str, float]) -> list[str]:
        """Human-readable reasons for each component of a recommendation's score."""
        expertise = json.loads(doctor.expertise_json)
        covered = list(dict.fromkeys(t.name for t in self.targets if t.name in expertise))
        reasons = [f"{doctor.specialty}: {SPECIALTY_WHY[doctor.specialty]} (+{parts['specialty']:.1f})"]
        if covered:
            reasons.append(f"expertise in {', '.join(map(area_name, covered))} (+{parts['expertise']:.1f})")
        elif self.targets:
            reasons.append("no listed expertise in the involved regions (+0.0)")
        for need in self.needs:
            label, short_why = NEED_LABELS[need.code]
            reasons.append(f"{label}: {'yes' if self.satisfies(need.code, doctor, site) else 'no'} ({short_why})")
        if self.needs:
            met = sum(self.satisfies(n.code, doctor, site) for n in self.needs)
            reasons.append(f"needs met: {met} of {len(self.needs)} (+{parts['needs']:.1f})")
        else:
            reasons.append(f"no special capability needed (+{parts['needs']:.1f})")
        if site.distance_km is None:
            reasons.append("no home location recorded: distance not scored")
        else:
            reasons.append(f"{site.distance_km:.0f} km from home (+{parts['distance']:.1f})")
        reasons.append(f"wait {doctor.wait_days} days (+{parts['wait']:.1f})")
        return reasons

    def recommendation(self, rank: int, doctor: Candidate, site: Site, parts: dict[str, float]) -> Recommendation:
        """One ranked recommendation, with its reasons."""
        return Recommendation(
            rank=rank,
            score=round(sum(parts.values()), 1),
            doctor=DoctorRef(
                id=doctor.id,
                name=doctor.name,
                specialty=doctor.specialty,
                expertise=json.loads(doctor.expertise_json),
                wait_days=doctor.wait_days,
            ),
            hospital=HospitalRef(
                id=site.id,
                name=site.name,
                city=site.city,
                country=site.country,
                capabilities=list(site.capabilities),
            ),
            distance_km=None if site.distance_km is None else round(site.distance_km, 1),
            components={k: round(v, 2) for k, v in parts.items()},
            reasons=self.reasons(doctor, site, parts),
        )
