"""The referral score in SQL, all but its distance part, so the database can rank candidates first.

`Scorer` (scoring.py) computes each recommendation's exact score in Python. The expressions here give
the same specialty, expertise, capability and waiting-time points in SQL (the distance points need a
great-circle distance, which SQLite lacks), so candidates can be fetched best-first and the search
can stop once no candidate left could reach the ranking (see referral.py).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Float, Text, and_, case, cast, literal, true

from neurotriage.clinical.bitsets import bit
from neurotriage.clinical.models import CAPABILITIES, Doctor
from neurotriage.clinical.scoring import POINTS, WAIT_ZERO_DAYS, Need, Scorer

EXPERTISE = cast(Doctor.expertise, Text)


def _expert_in(name: str) -> ColumnElement[bool]:
    """Whether a doctor lists `name` as expertise: a test of its bit, far cheaper per row than
    matching the JSON list."""
    return Doctor.expertise_bits.bitwise_and(bit(name)) != 0


def _hospital_offers(capability: str) -> ColumnElement[bool]:
    """Whether the doctor's hospital offers `capability` (the doctor row carries its bits)."""
    return Doctor.capability_bits.bitwise_and(bit(capability, CAPABILITIES)) != 0


def need_met(need: Need) -> ColumnElement[bool]:
    """Whether a doctor meets one need, as `Scorer.satisfies` decides."""
    if need.code == "awake_craniotomy":
        return _hospital_offers("awake_craniotomy")
    if need.code == "brainstem_expertise":
        return _expert_in("brainstem")
    return Doctor.specialty == "neuro-oncology"


def meets_all(scorer: Scorer) -> ColumnElement[bool]:
    """Whether a doctor meets every need of the case."""
    return and_(true(), *(need_met(n) for n in scorer.needs))


def _float(value: float) -> ColumnElement[float]:
    # Typed as double precision: PostgreSQL does untyped decimal literals in (slow) numeric arithmetic.
    return literal(float(value), Float)


def points_without_distance(scorer: Scorer) -> ColumnElement[float]:
    """Specialty + expertise + capability + waiting-time points, as `Scorer.components` gives them."""
    zero = _float(0.0)
    specialty = case(*((Doctor.specialty == k, _float(v)) for k, v in scorer.specialty_points.items()), else_=zero)
    expertise = zero
    if scorer.total_weight:
        share = POINTS["expertise"] / scorer.total_weight
        for target in scorer.targets:
            points = _float(share * target.weight)
            expertise = expertise + case((_expert_in(target.name), points), else_=zero)
    needs = _float(POINTS["needs"])
    if scorer.needs:
        per_need = _float(POINTS["needs"] / len(scorer.needs))
        needs = sum((case((need_met(n), per_need), else_=zero) for n in scorer.needs), zero)
    per_day = _float(POINTS["wait"] / WAIT_ZERO_DAYS)
    waiting = _float(POINTS["wait"]) - per_day * cast(Doctor.wait_days, Float)
    wait = case((Doctor.wait_days >= WAIT_ZERO_DAYS, zero), else_=waiting)
    return specialty + expertise + needs + wait
