"""The report page of a finding: summary, NiiVue viewer, referrals, clinician review, full report."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from neurotriage.anatomy.override import ATLAS_REGIONS, HEMISPHERES
from neurotriage.clinical.crosscheck import VERDICTS
from neurotriage.clinical.models import Finding, Study
from neurotriage.errors import UserError
from neurotriage.imaging.io import find_case
from neurotriage.imaging.labels import ANY_FILE_LABELS, BACKGROUND, LABEL_COLOURS, LEGEND_NAMES, VOLUME_LABELS, rgb
from neurotriage.imaging.naming import SEQUENCE_TITLES, SEQUENCES
from neurotriage.report.figures import HEAT_FROM
from neurotriage.segmentation.uncertainty import uncertainty_path
from neurotriage.vocabulary import ELOQUENT, LOBES, area_name
from neurotriage.web import access
from neurotriage.web.access import WriterUser
from neurotriage.web.auth import check_csrf
from neurotriage.web.deps import CurrentUser, SessionDep, audit
from neurotriage.web.models import User
from neurotriage.web.pacs_results import sign_off_of
from neurotriage.web.render import page
from neurotriage.web.review_state import (
    FindingState,
    current_json,
    differs_from_diagnosis,
    finding_state,
    review_sentence,
)
from neurotriage.web.reviews import add_review, check_review, rerun_crosscheck
from neurotriage.web.views import finding_view

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=4000)]
# The report iframe shows a stored, self-contained HTML file: no scripts, nothing from outside.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)
BANNER_STYLE = "border:2px solid #b45309;background:#fffbeb;padding:0.6em;font-weight:bold"


def label_lut() -> dict[str, Any]:
    """NiiVue label colour map of the segmentation file's values, in the PNG reports' colours and names."""
    rows = [(BACKGROUND, (0, 0, 0), 0, "")] + [
        (value, rgb(LABEL_COLOURS[label]), 255, LEGEND_NAMES[label])
        for value, label in sorted(ANY_FILE_LABELS.items())
        if label != BACKGROUND
    ]
    return {
        "I": [r[0] for r in rows],
        "R": [r[1][0] for r in rows],
        "G": [r[1][1] for r in rows],
        "B": [r[1][2] for r in rows],
        "A": [r[2] for r in rows],
        "labels": [r[3] for r in rows],
    }


def legend() -> list[dict[str, Any]]:
    """The overlay's labels: name and colour as in the report figures, the segmentation file values
    that carry the label (for the viewer's show/hide toggles), and the key of its stored volume."""
    volume_key = {label: key for key, label in VOLUME_LABELS.items()}
    return [
        {
            "name": LEGEND_NAMES[k],
            "rgb": list(rgb(c)),
            "values": sorted(v for v, label in ANY_FILE_LABELS.items() if label == k),
            "key": volume_key[k],
        }
        for k, c in sorted(LABEL_COLOURS.items())
    ]


def uncertainty_file(finding: Finding) -> Path | None:
    """The finding's uncertainty map, beside its segmentation in the report folder; None when it has none."""
    path = uncertainty_path(Path(finding.segmentation_path)) if finding.segmentation_path else None
    return path if path is not None and path.is_file() else None


def viewer_config(finding: Finding) -> dict[str, Any]:
    """What viewer.js needs: image, seg and (when there is one) uncertainty URLs (authenticated routes), label
    colours, the uncertainty shown from HEAT_FROM up as in the report, and the tumour's centroid and volumes as the
    finding stored them."""
    base = f"/reports/{finding.id}/images"
    return {
        "images": {key: f"{base}/{key}.nii.gz" for key in SEQUENCES},
        "seg": f"{base}/seg.nii.gz",
        "uncertainty": f"{base}/uncertainty.nii.gz" if uncertainty_file(finding) else None,
        "uncertainty_from": HEAT_FROM,
        "lut": label_lut(),
        "centroid_mm": finding.locate.get("centroid_mm"),
        "volumes_ml": finding.locate.get("volumes_ml") or {},
    }


@router.get("/reports/{finding_id}")
def report(request: Request, db: SessionDep, user: CurrentUser, finding_id: int):
    """The report page of one finding."""
    with db() as session:
        finding, _ = access.require_finding(session, user, finding_id)
        view = finding_view(session, finding_id)
        viewer = viewer_config(finding)
        audit(session, user, "view", f"finding:{finding_id}", {"patient": view["patient"]["id"]})
    return page(
        request, "report.html.j2", user, f=view, viewer=viewer,
        sequences=[(k, SEQUENCE_TITLES[k]) for k in SEQUENCES], labels=legend(), verdicts=VERDICTS,
        **review_choices(),
    )  # fmt: skip


def _stored_finding(db: SessionDep, user: User, finding_id: int, action: str, part: str) -> tuple[Finding, Study]:
    """The finding and its study as stored (their file paths come from the database only), when the user
    may see its patient; the request for its `part` is audited in the same transaction."""
    with db() as session:
        finding, study = access.require_finding(session, user, finding_id)
        audit(session, user, action, f"finding:{finding_id}/{part}", patient_id=study.patient_id)
        return finding, study


def review_banner(state: FindingState) -> str:
    """The notice a stored report carries once its result is not the current one (a clinician's override, or a
    cross-check computed again): who changed it and when, the current location and verdict; else empty."""
    if not differs_from_diagnosis(state):
        return ""
    current = current_json(state)
    text = (
        f"{review_sentence(state)} Now: {current['location']['summary']} Verdict: {current['verdict'] or 'none'}. "
        "This report is the automatic result as generated at diagnosis and is superseded where they differ."
    )
    return f'<p id="clinician-review" style="{BANNER_STYLE}">{escape(text)}</p>'


def with_banner(html: str, banner: str) -> str:
    """The report with the banner first in its body (or first of all when it has no body tag)."""
    body = BODY_TAG.search(html)
    at = body.end() if body else 0
    return html[:at] + banner + html[at:]


@router.get("/reports/{finding_id}/report.html")
def report_html(db: SessionDep, user: CurrentUser, finding_id: int):
    """The stored self-contained report.html, shown in a sandboxed frame, headed by a notice once a review or a
    re-run has changed its result."""
    finding, _ = _stored_finding(db, user, finding_id, "view", "report.html")
    path = Path(finding.report_dir, "report.html") if finding.report_dir else None
    if path is None or not path.is_file():
        raise UserError(f"finding {finding_id}: its report file is missing")
    with db() as session:
        banner = review_banner(finding_state(session, session.get(Finding, finding_id)))
    html = with_banner(path.read_text(encoding="utf-8"), banner)
    return HTMLResponse(html, headers={"Content-Security-Policy": REPORT_CSP})


@router.get("/reports/{finding_id}/images/{name}")
def image(db: SessionDep, user: CurrentUser, finding_id: int, name: str):
    """One sequence (`t1ce.nii.gz`), the segmentation (`seg.nii.gz`) or its uncertainty (`uncertainty.nii.gz`)."""
    key = name.removesuffix(".nii.gz")
    if key not in (*SEQUENCES, "seg", "uncertainty") or name != f"{key}.nii.gz":
        expected = f"{', '.join(SEQUENCES)}, seg or uncertainty"
        raise UserError(f"{name}: not an image of this finding (expected one of {expected})")
    finding, study = _stored_finding(db, user, finding_id, "download", f"images/{name}")
    if key == "seg":
        path = Path(finding.segmentation_path) if finding.segmentation_path else None
    elif key == "uncertainty":
        path = uncertainty_file(finding)
    else:
        path = find_case(Path(study.case_ref)).images[key]
    if path is None or not path.is_file():
        raise UserError(f"finding {finding_id}: its {key} image is missing")
    # Always gzip bytes for NiiVue, which picks the decoder by the URL's extension.
    return FileResponse(path, media_type="application/gzip" if path.suffix == ".gz" else "application/octet-stream")


def review_choices() -> dict[str, Any]:
    """The choices of the review form's location override: sides, then lobes and eloquent areas with their names."""
    return {
        "hemispheres": HEMISPHERES,
        "override_lobes": [(code, area_name(code)) for code in LOBES],
        "override_areas": [(code, area_name(code)) for code in ELOQUENT],
    }


@router.post("/reports/{finding_id}/review")
def review(
    request: Request,
    db: SessionDep,
    user: WriterUser,
    finding_id: int,
    location_decision: Text,
    verdict_decision: Text,
    comment: Text,
    csrf_token: Text = "",
    location_override: Text = "",
    location_hemisphere: Text = "",
    location_regions: Annotated[list[str], Form(max_length=len(ATLAS_REGIONS))] = (),
    verdict_override: Text = "",
):
    """Record a clinician's sign-off: location and verdict confirmed or overridden, with a comment. A location
    override (a side and atlas regions) computes the cross-check and the referral again for it."""
    check_csrf(request, csrf_token)
    entry = check_review(
        location_decision,
        location_override,
        verdict_decision,
        verdict_override,
        comment,
        hemisphere=location_hemisphere,
        regions=location_regions,
    )
    with db() as session:
        _, study = access.require_finding(session, user, finding_id)
        stored = add_review(session, finding_id, user, entry)
        sign_off = sign_off_of(session, finding_id, stored)
        detail = entry | {"review": stored.id}
        audit(session, user, "review", f"finding:{finding_id}", detail, patient_id=study.patient_id)
    request.app.state.pacs_results.submit(sign_off)
    return RedirectResponse(f"/reports/{finding_id}", status_code=303)


@router.post("/reports/{finding_id}/crosscheck")
def rerun(request: Request, db: SessionDep, user: WriterUser, finding_id: int, csrf_token: Text = "", back: Text = ""):
    """Compute the cross-check and the referral again with the patient's current symptoms and language
    dominance, for the current location; then the report page, or the patient page when `back` says so."""
    check_csrf(request, csrf_token)
    with db() as session:
        _, study = access.require_finding(session, user, finding_id)
        check = rerun_crosscheck(session, finding_id, user)
        detail = {"crosscheck": check.id, "verdict": check.verdict} if check else None
        audit(session, user, "rerun", f"finding:{finding_id}", detail, patient_id=study.patient_id)
    where = f"/patients/{study.patient_id}" if back == "patient" else f"/reports/{finding_id}"
    return RedirectResponse(where, status_code=303)
