"""The self-contained report.html: inline CSS, figures embedded as base64 PNG, prints well.

All text goes through Jinja2 with autoescaping on, so hostile patient names or reasons
(quotes, <script>, unicode) are shown as text, never run. The template only formats; `report_view`
turns the stages' objects into display strings, where a missing value becomes "not available"
rather than a guess.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from neurotriage import NOTICE
from neurotriage.diagnosis.provenance import ModelRef
from neurotriage.report.inputs import ReportInput
from neurotriage.report.text import NO_TUMOUR_SENTENCE, NOT_AVAILABLE, PROVISIONAL_REFERRAL, fmt, fmt_score
from neurotriage.report.vasari_table import vasari_groups
from neurotriage.vocabulary import area_name

# Verdicts a clinician must look at; the others are shown plainly.
FLAGGED_VERDICTS = frozenset({"discordant", "no tumour found despite focal symptoms"})
CAUTION_VERDICTS = frozenset({"partially concordant"})
EXPLAINED = {True: "yes", False: "no", None: "non-localising"}
FIGURES = (
    (
        "triplanar",
        "Tri-planar overlay",
        "Axial, coronal and sagittal views through the tumour centroid (mid-brain when there is no tumour), "
        "in BraTS space (the SRI24 1 mm grid the model and the atlas use).",
    ),
    (
        "native",
        "Tri-planar overlay in the patient's own space",
        "The same segmentation taken back to the T1ce as the scanner acquired it (skull on, scanner coordinates), "
        "as written to native/ beside this report.",
    ),
    (
        "uncertainty",
        "Uncertainty",
        "Where the model is unsure, through the tumour centroid: the entropy of its averaged probabilities (over "
        "flips and ensemble members) across the four labels, 0 where one label is certain to 1 where all four are "
        "equally likely, in heat colours from 0.1; cyan is the whole-tumour outline. Not a finding: where to "
        "look hardest when checking the outline.",
    ),
    ("montage", "Axial slice montage", "Axial slices spread over the tumour, inferior to superior, in BraTS space."),
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
        ("MRN", f"{p.mrn} ({p.mrn_issuer})" if p.mrn and p.mrn_issuer else fmt(p.mrn)),
        ("Name", p.name or NOT_AVAILABLE),
        ("Sex", fmt(p.sex)),
        ("Birth date", fmt(p.birth_date.isoformat() if p.birth_date else None)),
        ("Language-dominant hemisphere", p.language_dominance),
    ]


def _finding(report: ReportInput) -> dict[str, Any]:
    locate = report.locate
    default = "Tumour found; no localisation summary available." if report.has_tumour else NO_TUMOUR_SENTENCE
    if locate is None:
        empty = {"facts": [], "volumes": [], "regions": [], "eloquent": []}
        return {"available": False, "has_tumour": report.has_tumour, "summary": default, **empty}
    regions = [
        {"name": area_name(r.name), "side": fmt(r.side), "ml": fmt(r.ml), "percent": fmt(100.0 * r.fraction_of_tumour)}
        for r in locate.regions
    ]
    volumes = locate.volumes_ml.model_dump()
    return {
        "available": True,
        "has_tumour": report.has_tumour,
        "summary": locate.summary or default,
        "facts": [(label, fmt(getattr(locate, key))) for key, label in LOCATION_FACTS],
        "volumes": [(label, fmt(volumes[key])) for key, label in VOLUMES],
        **_uncertain(report),
        "regions": regions,
        "eloquent": [f"{area_name(e.name)} ({fmt(e.side)})" for e in locate.eloquent],
    }


def _uncertain(report: ReportInput) -> dict[str, Any]:
    """Uncertain tissue beside each compartment's volume, and what counts as uncertain."""
    tissue = report.uncertainty
    if tissue is None:
        return {"uncertain": [], "uncertain_note": ""}
    note = (
        f"Uncertain tissue: uncertainty {tissue.threshold:g} or more (at least as unsure as an even split between "
        f"two labels), inside each compartment or within {tissue.near_mm:g} mm of it; {fmt(tissue.total_ml)} ml "
        "in the whole scan. It shows where to check the outline, not more tumour."
    )
    return {"uncertain": [fmt(tissue.ml.get(key)) for key, _ in VOLUMES], "uncertain_note": note}


def _crosscheck(report: ReportInput) -> dict[str, Any]:
    check = report.crosscheck
    if check is None:
        return {
            "available": False,
            "verdict": NOT_AVAILABLE,
            "summary": "",
            "needs_review": False,
            "level": "caution",
            "concordance": NOT_AVAILABLE,
            "predicted": "none",
            "rows": [],
        }
    rows = [
        {
            "symptom": s.name or s.code,
            "side": fmt(s.side),
            "explained": EXPLAINED[s.explained],
            "explained_flag": s.explained,
            "why": s.reason or NOT_AVAILABLE,
            "sources": s.sources,
        }
        for s in check.symptoms
    ]
    predicted = [f"{fmt(p.side)} {fmt(p.name)}" for p in check.predicted_regions]
    needs_review = check.needs_review or check.verdict in FLAGGED_VERDICTS
    return {
        "available": True,
        "verdict": check.verdict,
        "summary": check.summary,
        "needs_review": needs_review,
        "level": "flag" if needs_review else "caution" if check.verdict in CAUTION_VERDICTS else "ok",
        "concordance": fmt_score(check.score),
        "predicted": ", ".join(predicted) or "none",
        "rows": rows,
    }


def _referrals(report: ReportInput) -> list[dict[str, Any]]:
    return [
        {
            "rank": ref.rank,
            "doctor": ref.doctor.name,
            "specialty": fmt(ref.doctor.specialty),
            "hospital": ref.hospital.name,
            "city": fmt(ref.hospital.city),
            "distance": fmt(ref.distance_km),
            "wait": fmt(ref.doctor.wait_days),
            "score": fmt(ref.score),
            "reasons": ref.reasons,
        }
        for ref in report.referrals
    ]


def _origin_rows(origin: str | None) -> list[tuple[str, str]]:
    """A model the user supplied is named with where it came from; its accuracy is not the project's claim."""
    return [("User-supplied model", f"{origin} (its accuracy is the user's claim)")] if origin else []


def _member_rows(models: list[ModelRef]) -> list[tuple[str, str]]:
    """An ensemble's members, each with its SHA-256 and, when user-supplied, where it came from."""
    if len(models) < 2:
        return []
    return [
        (
            f"Ensemble member {n}",
            f"{m.model_id}, SHA-256 {m.sha256 or NOT_AVAILABLE}" + (f", {m.origin}" if m.origin else ""),
        )
        for n, m in enumerate(models, start=1)
    ]


def _provenance(report: ReportInput) -> dict[str, Any]:
    prov = report.provenance
    return {
        "rows": [
            ("Software", f"neurotriage {prov.software_version}"),
            ("Model", prov.model_id or NOT_AVAILABLE),
            ("Model SHA-256", prov.model_sha256 or NOT_AVAILABLE),
            *_origin_rows(prov.model_origin),
            *_member_rows(prov.models),
            ("Flip averaging", fmt(prov.tta)),
            ("Post-processing", fmt(prov.postprocess)),
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
    vasari = report.locate.vasari if report.locate else None
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
        "hints": [hint.text for hint in report.review_hints],
        "vasari": vasari_groups(vasari) if vasari else [],
        "crosscheck": _crosscheck(report),
        "referrals": _referrals(report),
        "referral_note": None if report.patient.confirmed else PROVISIONAL_REFERRAL,
        "provenance": _provenance(report),
        "figures": [
            {"key": key, "title": title, "caption": caption, "src": png_data_uri(figures[key])}
            for key, title, caption in FIGURES
            if key in figures
        ],
    }


@functools.lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, StrictUndefined  # jinja2: only when rendering (start-up time)

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
