"""The self-contained report.html: inline CSS, figures embedded as base64 PNG, prints well.

All text goes through Jinja2 with autoescaping on, so hostile patient names or reasons
(quotes, <script>, unicode) are shown as text, never run. The template only formats; the
tolerant reading of the stages' dicts happens here, in `report_view`, where a missing key
becomes "not available" rather than a guess.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from neurotriage import NOTICE
from neurotriage.report.inputs import ReportInput
from neurotriage.report.text import NO_TUMOUR_SENTENCE, NOT_AVAILABLE, fmt, fmt_score, referral_facts

# Verdicts a clinician must look at; the others are shown plainly.
FLAGGED_VERDICTS = frozenset({"discordant", "no tumour found despite focal symptoms"})
CAUTION_VERDICTS = frozenset({"partially concordant"})
EXPLAINED = {True: "yes", False: "no", None: "non-localising"}
FIGURES = (
    (
        "triplanar",
        "Tri-planar overlay",
        "Axial, coronal and sagittal views through the tumour centroid (mid-brain when there is no tumour).",
    ),
    ("montage", "Axial slice montage", "Axial slices spread over the tumour, inferior to superior."),
    ("regions", "Tumour volume per region", "Whole-tumour volume in each atlas region, with its side."),
)
LOCATION_FACTS = (
    ("hemisphere", "Hemisphere"),
    ("primary_region", "Primary region"),
    ("crosses_midline", "Crosses the midline"),
    ("n_components", "Separate components"),
    ("touches_ventricles", "Touches the ventricles"),
    ("cortical_involvement", "Cortical involvement"),
    ("centroid_mm", "Centroid (mm)"),
)
VOLUMES = (
    ("whole_tumour", "Whole tumour"),
    ("tumour_core", "Tumour core"),
    ("enhancing", "Enhancing"),
    ("necrosis", "Necrosis / non-enhancing core"),
    ("edema", "Edema"),
)


def _patient_rows(report: ReportInput) -> list[tuple[str, str]]:
    p = report.patient
    return [
        ("Patient ID", p.id),
        ("Name", p.name or NOT_AVAILABLE),
        ("Sex", fmt(p.sex)),
        ("Birth date", fmt(p.birth_date.isoformat() if p.birth_date else None)),
        ("Language-dominant hemisphere", p.language_dominance),
    ]


def _finding(report: ReportInput) -> dict[str, Any]:
    locate = report.locate or {}
    volumes = locate.get("volumes_ml") or {}
    regions = [
        {
            "name": fmt(r.get("name")),
            "side": fmt(r.get("side")),
            "ml": fmt(r.get("ml")),
            "percent": fmt(100.0 * r["fraction_of_tumour"])
            if r.get("fraction_of_tumour") is not None
            else NOT_AVAILABLE,
        }
        for r in locate.get("regions") or []
    ]
    eloquent = [f"{fmt(e.get('name'))} ({fmt(e.get('side'))})" for e in locate.get("eloquent") or []]
    if not report.has_tumour:
        summary = locate.get("summary") or NO_TUMOUR_SENTENCE
    else:
        summary = locate.get("summary") or "Tumour found; no localisation summary available."
    return {
        "available": bool(locate),
        "has_tumour": report.has_tumour,
        "summary": summary,
        "facts": [(label, fmt(locate.get(key))) for key, label in LOCATION_FACTS],
        "volumes": [(label, fmt(volumes.get(key))) for key, label in VOLUMES],
        "regions": regions,
        "eloquent": eloquent,
    }


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict) and data:
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}{key} / " if isinstance(value, dict) else f"{prefix}{key}")
        return rows
    return [(prefix.rstrip(" /"), fmt(data))]


def _crosscheck(report: ReportInput) -> dict[str, Any]:
    check = report.crosscheck or {}
    verdict = check.get("verdict")
    rows = [
        {
            "symptom": s.get("name") or s.get("code") or NOT_AVAILABLE,
            "side": fmt(s.get("side")),
            "explained": EXPLAINED.get(s.get("explained"), NOT_AVAILABLE),
            "explained_flag": s.get("explained"),
            "why": s.get("reason") or NOT_AVAILABLE,
            "sources": [str(x) for x in s.get("sources") or []],
        }
        for s in check.get("symptoms") or []
    ]
    predicted = [f"{fmt(p.get('side'))} {fmt(p.get('name'))}" for p in check.get("predicted_regions") or []]
    needs_review = bool(check.get("needs_review")) or verdict in FLAGGED_VERDICTS
    level = "flag" if needs_review else "caution" if verdict in CAUTION_VERDICTS else "ok"
    return {
        "available": bool(check),
        "verdict": verdict or NOT_AVAILABLE,
        "summary": check.get("summary") or "",
        "needs_review": needs_review,
        "level": level if verdict else "caution",
        "concordance": fmt_score(check.get("score")),
        "predicted": ", ".join(predicted) or "none",
        "rows": rows,
    }


def _referrals(report: ReportInput) -> list[dict[str, Any]]:
    rows = []
    for position, ref in enumerate(report.referrals, start=1):
        facts = referral_facts(ref)
        rows.append(
            {
                "rank": ref.get("rank") or position,
                "doctor": facts["doctor"] or NOT_AVAILABLE,
                "specialty": fmt(facts["specialty"]),
                "hospital": facts["hospital"] or NOT_AVAILABLE,
                "city": fmt(facts["city"]),
                "distance": fmt(ref.get("distance_km")),
                "wait": fmt(facts["wait_days"]),
                "score": fmt(ref.get("score")),
                "reasons": [str(r) for r in ref.get("reasons") or []],
            }
        )
    return rows


def _provenance(report: ReportInput) -> dict[str, Any]:
    prov = report.provenance
    return {
        "rows": [
            ("Software", f"neurotriage {prov.software_version}"),
            ("Model", prov.model_id or NOT_AVAILABLE),
            ("Model SHA-256", prov.model_sha256 or NOT_AVAILABLE),
            ("Created", prov.created_at.isoformat(timespec="seconds")),
            ("Case", report.imaging.case_id if report.imaging else NOT_AVAILABLE),
        ],
        "inputs": [(f.path, f.sha256) for f in prov.inputs],
    }


def png_data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so the page needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def report_view(report: ReportInput, figures: dict[str, bytes]) -> dict[str, Any]:
    """Everything the template shows, as display-ready strings and rows."""
    vasari = (report.locate or {}).get("vasari")
    return {
        "notice": NOTICE,
        "title": f"neurotriage report: {report.patient.name or report.patient.id}",
        "patient": _patient_rows(report),
        "symptoms": [
            {
                "name": s.name or s.code,
                "code": s.code,
                "snomed": s.snomed or NOT_AVAILABLE,
                "side": fmt(s.side),
                "onset": fmt(s.onset),
                "severity": fmt(s.severity),
            }
            for s in report.symptoms
        ],
        "finding": _finding(report),
        "vasari": _flatten(vasari) if vasari else [],
        "crosscheck": _crosscheck(report),
        "referrals": _referrals(report),
        "provenance": _provenance(report),
        "figures": [
            {"title": title, "caption": caption, "src": png_data_uri(figures[key])}
            for key, title, caption in FIGURES
            if key in figures
        ],
    }


@functools.lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # StrictUndefined: a template typo fails loudly instead of printing an empty cell.
    env = Environment(
        loader=PackageLoader("neurotriage.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2")


def render_html(report: ReportInput, figures: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page; `figures` maps figure name -> PNG bytes."""
    return _template().render(**report_view(report, figures))
