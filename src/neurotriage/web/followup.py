"""Follow-up volumetry: each tumour compartment's volume over a patient's studies, the change from the study
before, and a small inline SVG plot of it.

The change is volumetric, not RANO. RANO compares the product of two perpendicular diameters of the
enhancing tumour: +25 % is progression, -50 % a partial response. For a sphere the volume goes with that
product to the power 3/2, so these are about +40 % (1.25^1.5 = 1.40) and -65 % (0.5^1.5 = 0.35) in volume,
the volumetric thresholds of the modified RANO criteria: Ellingson BM, Wen PY, Cloughesy TF. Modified
criteria for radiographic response assessment in glioblastoma clinical trials. Neurotherapeutics
2017;14(2):307-320, doi:10.1007/s13311-016-0507-6.
"""

from __future__ import annotations

import math
from datetime import date
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical.models import Finding, Study
from neurotriage.imaging.labels import LABEL_COLOURS, VOLUME_LABELS
from neurotriage.report.html import VOLUMES

PROGRESSION_PCT = 40.0
RESPONSE_PCT = -65.0
NOTE = (
    "Volumetric change, not a RANO assessment: RANO measures two diameters of the enhancing tumour"
    " (+25 % progression, −50 % partial response) and weighs new lesions, steroids and the clinical state."
    f" Their volumetric equivalents, about +{PROGRESSION_PCT:.0f} % and −{-RESPONSE_PCT:.0f} %"
    " (Ellingson et al., Neurotherapeutics 2017;14:307–320), are marked."
)
COLOURS = {
    "whole_tumour": "#444444",
    "tumour_core": "#1f77b4",
    **{key: LABEL_COLOURS[label] for key, label in VOLUME_LABELS.items()},
}


def _taken(study: Study) -> tuple[date, str]:
    """When the study was taken: its own date, else the day it was added."""
    return (study.study_date, "study") if study.study_date else (study.created_at.date(), "upload")


def _change(before: float, after: float) -> tuple[float, float | None]:
    """The change in ml and in percent (None from nothing)."""
    return after - before, (100.0 * (after - before) / before if before > 0 else None)


def _crossed(pct: float | None) -> str | None:
    if pct is None:
        return None
    return "progression" if pct >= PROGRESSION_PCT else "response" if pct <= RESPONSE_PCT else None


def _points(pairs: list[tuple[Study, Finding]]) -> list[dict[str, Any]]:
    """One point per study, in time order, with the change of each compartment from the point before."""
    points: list[dict[str, Any]] = []
    for study, finding in sorted(pairs, key=lambda pair: (_taken(pair[0])[0], pair[0].id)):
        day, dated_by = _taken(study)
        stored = finding.locate.get("volumes_ml") or {}
        volumes = {key: float(stored.get(key) or 0.0) for key, _ in VOLUMES}
        before = points[-1]["volumes_ml"] if points else None
        changes = {key: _change(before[key], ml) for key, ml in volumes.items()} if before else {}
        points.append(
            {
                "study_id": study.id,
                "finding_id": finding.id,
                "date": day.isoformat(),
                "dated_by": dated_by,
                "volumes_ml": volumes,
                "change_ml": {key: ml for key, (ml, _) in changes.items()} if before else None,
                "change_pct": {key: pct for key, (_, pct) in changes.items()} if before else None,
                "crossed": {key: _crossed(pct) for key, (_, pct) in changes.items()} if before else None,
            }
        )
    return points


def follow_up(session: Session, patient_id: int) -> dict[str, Any] | None:
    """The patient's volumes over time (the newest finding of each study), when two or more studies have one."""
    rows = session.execute(
        select(Study, Finding)
        .join(Finding, Finding.study_id == Study.id)
        .where(Study.patient_id == patient_id)
        .order_by(Finding.id)
    )
    newest = {study.id: (study, finding) for study, finding in rows}  # later findings replace earlier ones
    if len(newest) < 2:
        return None
    return {
        "compartments": dict(VOLUMES),
        "points": _points(list(newest.values())),
        "progression_pct": PROGRESSION_PCT,
        "response_pct": RESPONSE_PCT,
        "note": NOTE,
    }


WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 210, 16, 40  # margins: the y labels, the legend, the x labels
DATE_WIDTH = 72  # a date label's width: closer dates are labelled only on their points' tooltips


def _x_positions(days: list[date]) -> list[float]:
    """Each point's x: by date, or evenly spaced when every study has the same date."""
    span = (days[-1] - days[0]).days
    width = WIDTH - LEFT - RIGHT
    if span == 0:
        return [LEFT + width * i / max(1, len(days) - 1) for i in range(len(days))]
    return [LEFT + width * (day - days[0]).days / span for day in days]


def _round_up(ml: float) -> float:
    """The smallest of 1, 2, 5 or 10 times a power of ten at or above `ml` (the top of the y axis)."""
    if ml <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(ml))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= ml)


def _y(ml: float, top: float) -> float:
    """The y of a volume on an axis from 0 to `top` ml."""
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - ml / top)


def _text(x: float, y: float, content: str, anchor: str = "start") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="11">{escape(content)}</text>'


def _axes(top: float) -> list[str]:
    """The two axes and the y axis's labels (0, half, top)."""
    bottom = HEIGHT - BOTTOM
    parts = [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#999"/>',
    ]
    for ml in (0.0, top / 2, top):
        parts.append(_text(LEFT - 6, _y(ml, top) + 4, f"{ml:g} ml", "end"))
    return parts


def _date_labels(xs: list[float], points: list[dict[str, Any]]) -> list[str]:
    """The study dates under the x axis, leaving out those that would overlap the one before."""
    parts, labelled = [], -DATE_WIDTH
    for x, point in zip(xs, points, strict=True):
        if x - labelled >= DATE_WIDTH:
            labelled = x
            parts.append(_text(x, HEIGHT - 20, point["date"], "middle"))
    return parts


def _series(key: str, label: str, row: int, xs: list[float], points: list[dict[str, Any]], top: float) -> list[str]:
    """One compartment: its line, a point per study with the value as a tooltip, and its legend entry."""
    colour = COLOURS[key]
    ys = [_y(p["volumes_ml"][key], top) for p in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    parts = [f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2" data-key="{key}"/>']
    for x, y, p in zip(xs, ys, points, strict=True):
        title = escape(f"{label}, {p['date']}: {p['volumes_ml'][key]:.1f} ml")
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{title}</title></circle>')
    legend_x, legend_y = WIDTH - RIGHT + 12, TOP + 14 * row + 8
    ends = f'x1="{legend_x}" y1="{legend_y}" x2="{legend_x + 16}" y2="{legend_y}"'
    parts.append(f'<line {ends} stroke="{colour}" stroke-width="2"/>')
    parts.append(_text(legend_x + 20, legend_y + 4, label))
    return parts


def plot_svg(follow: dict[str, Any]) -> str:
    """The volumes of each compartment over time as a self-contained SVG (no script or style: CSP-safe)."""
    points = follow["points"]
    xs = _x_positions([date.fromisoformat(p["date"]) for p in points])
    top = _round_up(max(max(p["volumes_ml"].values()) for p in points))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}"'
        ' role="img" aria-label="Tumour volumes per compartment over time" id="follow-up-plot">'
    )
    lines = [
        part
        for row, (key, label) in enumerate(follow["compartments"].items())
        for part in _series(key, label, row, xs, points, top)
    ]
    return "".join([head, *_axes(top), *_date_labels(xs, points), *lines, "</svg>"])
