"""The referral score in SQL, all but its distance part, so the database can rank candidates first.

`Scorer` (scoring.py) computes each recommendation's exact score in Python. The expressions here give
the same specialty, expertise, capability and waiting-time points in SQL (the distance points need a
great-circle distance, which SQLite lacks), so candidates can be fetched best-first and the search
can stop once no candidate left could reach the ranking (see referral.py).
"""

from __future__ import annotations

import json

from sqlalchemy import ColumnElement, Text, and_, case, cast, literal, true

from neurotriage.clinical.models import Doctor, Hospital
from neurotriage.clinical.scoring import POINTS, WAIT_ZERO_DAYS, Need, Scorer

EXPERTISE = cast(Doctor.expertise, Text)
CAPABILITIES = cast(Hospital.capabilities, Text)


def _listed(column: ColumnElement, name: str) -> ColumnElement[bool]:
    # JSON text holds each name quoted, as Scorer matches it; autoescape keeps '_' literal.
    return column.contains(json.dumps(name), autoescape=True)


def need_met(need: Need) -> ColumnElement[bool]:
    """Whether a doctor (joined to their hospital) meets one need, as `Scorer.satisfies` decides."""
    if need.code == "awake_craniotomy":
        return _listed(CAPABILITIES, "awake_craniotomy")
    if need.code == "brainstem_expertise":
        return _listed(EXPERTISE, "brainstem")
    return Doctor.specialty == "neuro-oncology"


def meets_all(scorer: Scorer) -> ColumnElement[bool]:
    """Whether a doctor meets every need of the case."""
    return and_(true(), *(need_met(n) for n in scorer.needs))


def points_without_distance(scorer: Scorer) -> ColumnElement[float]:
    """Specialty + expertise + capability + waiting-time points, as `Scorer.components` gives them."""
    specialty = case(*((Doctor.specialty == k, v) for k, v in scorer.specialty_points.items()), else_=0.0)
    expertise = literal(0.0)
    if scorer.total_weight:
        share = POINTS["expertise"] / scorer.total_weight
        for target in scorer.targets:
            expertise = expertise + case((_listed(EXPERTISE, target.name), share * target.weight), else_=0.0)
    needs = literal(POINTS["needs"])
    if scorer.needs:
        per_need = POINTS["needs"] / len(scorer.needs)
        needs = sum((case((need_met(n), per_need), else_=0.0) for n in scorer.needs), literal(0.0))
    per_day = POINTS["wait"] / WAIT_ZERO_DAYS
    wait = case((Doctor.wait_days >= WAIT_ZERO_DAYS, 0.0), else_=POINTS["wait"] - per_day * Doctor.wait_days)
    return specialty + expertise + needs + wait
