"""Rank doctors (with their hospitals) for a located tumour or for symptom-predicted regions.

SQL does the filtering (specialty, accepting new patients, a latitude/longitude box around the
patient's home, widened until enough candidates are found) and orders the candidates by every part
of the score but distance (`prefilter`); Python scores them exactly (`scoring`), reading best first
until no unread candidate could still enter the ranking. Each recommendation carries the reasons
behind every part of its score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

from neurotriage.anatomy.location import Location
from neurotriage.clinical.crosscheck import PredictedRegion
from neurotriage.clinical.geo import bounding_box, haversine_km
from neurotriage.clinical.knowledge import ELOQUENT, LANGUAGE_AREAS
from neurotriage.clinical.models import Doctor, Hospital
from neurotriage.clinical.prefilter import EXPERTISE, meets_all, points_without_distance
from neurotriage.clinical.scoring import POINTS, SPECIALTY_FIT, Candidate, Need, Recommendation, Scorer, Site, Target
from neurotriage.errors import UserError
from neurotriage.vocabulary import area_name

# Search boxes tried in turn, nearest first, until there are `limit` candidates and at least one
# of them meets every need of the case; None = no distance filter.
SEARCH_RADII_KM: tuple[float | None, ...] = (150.0, 400.0, 1000.0, 2500.0, None)
# How many of the best candidates each round reads; None reads them all.
READS: tuple[int | None, ...] = (64, 576, None)
# SQL and Python add the same points in another order; this covers their rounding differences.
BOUND_SLACK = 1e-6


@dataclass(frozen=True)
class ReferralRequest:
    """Everything a ranking is computed from (stored with the referral)."""

    basis: str
    targets: tuple[Target, ...]
    needs: tuple[Need, ...]
    home: tuple[float, float] | None
    limit: int = 10

    def to_json(self) -> dict[str, Any]:
        """JSON-ready copy, including the scoring tables used."""
        return {
            "basis": self.basis,
            "targets": [asdict(t) for t in self.targets],
            "needs": [asdict(n) for n in self.needs],
            "home": list(self.home) if self.home else None,
            "limit": self.limit,
            "specialty_fit": SPECIALTY_FIT[self.basis],
            "points": POINTS,
        }


class Ranking(BaseModel):
    """The outcome of one ranking: the search box that was enough, how many candidates, the best ones."""

    search_radius_km: float | None
    candidates: int
    recommendations: list[Recommendation]


def _merge(targets: Iterable[Target]) -> tuple[Target, ...]:
    """One target per (name, side), keeping the largest weight, heaviest first."""
    best: dict[tuple[str, str], Target] = {}
    for t in targets:
        key = (t.name, t.side)
        if key not in best or t.weight > best[key].weight:
            best[key] = t
    return tuple(sorted(best.values(), key=lambda t: (-t.weight, t.name, t.side)))


def _eloquent_need(names: Sequence[str], prefix: str) -> tuple[Need, ...]:
    if not names:
        return ()
    return (Need("awake_craniotomy", f"{prefix} {', '.join(dict.fromkeys(names))} (eloquent)"),)


def needs_for_location(location: Location, dominance: str) -> tuple[Need, ...]:
    """Capabilities an imaged tumour needs: awake craniotomy near eloquent cortex (language areas
    only on the dominant side), brainstem expertise, and neuro-oncology for an enhancing tumour."""
    eloquent = [
        f"{h.side} {area_name(h.name)}"
        for h in [*location.involved_regions, *location.eloquent]
        if h.name in ELOQUENT and not (h.name in LANGUAGE_AREAS and h.side not in (dominance, "midline"))
    ]
    needs = _eloquent_need(eloquent, "the tumour involves or abuts")
    if any(h.name == "brainstem" for h in location.involved_regions):
        needs += (Need("brainstem_expertise", "the tumour involves the brainstem"),)
    enhancing = location.volumes_ml.enhancing
    if enhancing > 0:
        needs += (Need("neuro_oncology", f"the tumour enhances ({enhancing:.1f} ml)"),)
    return needs


def targets_for_location(location: Location) -> tuple[Target, ...]:
    """Regions to match expertise for: each involved region by its share, eloquent areas at 0.5."""
    regions = [Target(h.name, h.side, max(h.fraction_of_tumour, 0.1)) for h in location.involved_regions]
    return _merge(regions + [Target(h.name, h.side, 0.5) for h in location.eloquent])


def targets_for_prediction(predicted: Sequence[PredictedRegion]) -> tuple[Target, ...]:
    """Regions the symptoms predict, weighted by how many symptoms point to each."""
    return _merge(Target(p.name, p.side, float(len(p.symptoms))) for p in predicted)


def needs_for_prediction(predicted: Sequence[PredictedRegion]) -> tuple[Need, ...]:
    """Capabilities the predicted regions would need (no enhancement is known without imaging)."""
    eloquent = [f"{p.side} {area_name(p.name)}" for p in predicted if p.name in ELOQUENT]
    needs = _eloquent_need(eloquent, "the symptoms point to")
    if any(p.name == "brainstem" for p in predicted):
        needs += (Need("brainstem_expertise", "the symptoms point to the brainstem"),)
    return needs


def _in_box(query: Select, home: tuple[float, float] | None, radius_km: float | None) -> Select:
    """Restrict a query of doctors to those whose hospital lies in the box around home.

    Naming each whole degree of latitude the box spans lets the database read the box as one short
    range of longitudes per degree and specialty (ix_doctors_referral) instead of the whole band of
    latitudes."""
    if home is None or radius_km is None:
        return query
    lat_min, lat_max, lon_min, lon_max = bounding_box(*home, radius_km)
    bands = range(math.floor(lat_min), math.floor(lat_max) + 1)
    query = query.where(Doctor.lat_band.in_(bands), Doctor.lat.between(lat_min, lat_max))
    return query if lon_min is None else query.where(Doctor.lon.between(lon_min, lon_max))


def _box(request: ReferralRequest, radius_km: float | None) -> Select:
    """Accepting doctors of a fitting specialty whose hospital lies in the search box (no columns yet).

    Doctor rows carry their hospital's location and capabilities, so the box needs no join."""
    query = (
        select()
        .select_from(Doctor)
        .where(Doctor.specialty.in_(SPECIALTY_FIT[request.basis]), Doctor.accepting.is_(True))
    )
    return _in_box(query, request.home, radius_km)


def _enough(session: Session, request: ReferralRequest, scorer: Scorer, radius_km: float | None) -> bool:
    """Whether the box holds `limit` candidates, one of whom meets every need: two probes that stop at
    the first rows that answer, instead of counting the box."""
    box = _box(request, radius_km).add_columns(literal(1))
    conn = session.connection()
    if conn.execute(box.offset(request.limit - 1).limit(1)).first() is None:
        return False
    return conn.execute(box.where(meets_all(scorer)).limit(1)).first() is not None


def _radius(session: Session, request: ReferralRequest, scorer: Scorer) -> float | None:
    """The smallest search box holding `limit` candidates, one of whom meets every need."""
    radii = SEARCH_RADII_KM if request.home else (None,)
    return next((r for r in radii[:-1] if _enough(session, request, scorer, r)), radii[-1])


def _count(session: Session, request: ReferralRequest, radius_km: float | None) -> int:
    """How many candidates the box holds (a statement of its own: counting in the ranking statement
    with a window function made SQLite materialise the box, 2x slower)."""
    return session.connection().execute(_box(request, radius_km).add_columns(func.count())).scalar_one()


def _best(
    session: Session, request: ReferralRequest, scorer: Scorer, radius_km: float | None, size: int | None
) -> list[tuple[Candidate, float]]:
    """The box's `size` best candidates by their points without distance (all when None), best first."""
    points = points_without_distance(scorer)
    columns = (Doctor.id, Doctor.name, Doctor.hospital_id, Doctor.specialty, Doctor.wait_days, EXPERTISE, points)
    query = _box(request, radius_km).add_columns(*columns).order_by(points.desc(), Doctor.id).limit(size)
    # Core execution on the session's connection: these are plain columns, no ORM entities.
    return [(Candidate(*row[:-1]), row[-1]) for row in session.connection().execute(query)]


def _sites(session: Session, request: ReferralRequest, hospital_ids: set[int]) -> dict[int, Site]:
    """The candidates' hospitals, each with its distance from home computed once."""
    query = select(
        Hospital.id, Hospital.name, Hospital.city, Hospital.country, Hospital.capabilities, Hospital.lat, Hospital.lon
    ).where(Hospital.id.in_(hospital_ids))
    home = request.home
    return {
        hid: Site(hid, name, city, country, tuple(caps), haversine_km(*home, lat, lon) if home else None)
        for hid, name, city, country, caps, lat, lon in session.connection().execute(query).all()
    }


def _order(scored: tuple[dict[str, float], Candidate], sites: dict[int, Site]) -> tuple[float, float, int]:
    # Best score first; ties go to the nearer hospital, then the lower doctor id (stable output).
    parts, candidate = scored
    return -sum(parts.values()), sites[candidate.hospital_id].distance_km or 0.0, candidate.id


def recommend(session: Session, request: ReferralRequest) -> Ranking:
    """Rank the candidates of the smallest search box that is enough, reading them best first.

    The database orders candidates by every part of the score but distance; a candidate's distance
    is worth at most the full distance points. Once `limit` candidates score more than the best
    unread one could even at the door, nobody unread can enter the ranking, and reading stops."""
    if request.limit < 1:
        raise UserError(f"limit {request.limit}: at least one recommendation must be asked for", field="limit")
    scorer = Scorer(request.basis, request.targets, request.needs)
    radius = _radius(session, request, scorer)
    best_distance = POINTS["distance"] if request.home else 0.0
    sites: dict[int, Site] = {}
    # Each round reads the best candidates again from the top, in one statement, so the ranking always
    # comes from one snapshot of the doctors, even where each statement sees newer commits.
    for size in READS:
        rows = _best(session, request, scorer, radius, size)
        sites |= _sites(session, request, {c.hospital_id for c, _ in rows} - sites.keys())
        scored = sorted(
            ((scorer.components(c, sites[c.hospital_id]), c) for c, _ in rows), key=lambda pc: _order(pc, sites)
        )
        del scored[request.limit :]
        if size is None or len(rows) < size:
            break
        if len(scored) == request.limit and sum(scored[-1][0].values()) > rows[-1][1] + best_distance + BOUND_SLACK:
            break
    return Ranking(
        search_radius_km=radius,
        candidates=_count(session, request, radius),
        recommendations=[
            scorer.recommendation(rank, c, sites[c.hospital_id], parts)
            for rank, (parts, c) in enumerate(scored, start=1)
        ],
    )
