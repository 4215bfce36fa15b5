"""The FHIR bundle of a reviewed finding: as it stands after the newest review or re-run, written beside the
bundle of the diagnosis, which, like report.html, is never rewritten.

The patient, symptoms, study and volumes stay as written; the tumour's location, the cross-check (with a
clinician's verdict where one was given), the DiagnosticReport and the referrals are the current ones. The
report is "amended" once a review overrode the automatic result or the cross-check was computed again, and
"final" when a clinician only confirmed it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neurotriage.files import write_json_atomic
from neurotriage.report.fhir import reviewed_fhir_bundle
from neurotriage.report.folder import FHIR_JSON, FHIR_REVIEWED_JSON
from neurotriage.report.inputs import ReportInput
from neurotriage.web.review_state import FindingState, current_crosscheck, differs_from_diagnosis, review_sentence

log = logging.getLogger(__name__)


def write_reviewed_fhir(folder: Path, report: dict[str, Any], state: FindingState) -> str | None:
    """Write the reviewed bundle (atomically) into the report folder when its report (report.json's content)
    lists a FHIR bundle; returns its file name, else None."""
    if FHIR_JSON not in report.get("files", []) or not (folder / FHIR_JSON).is_file():
        return None
    written = _read_bundle(folder / FHIR_JSON)
    if written is None:
        return None
    current = _current_report(report, state)
    bundle = reviewed_fhir_bundle(
        written, current, datetime.now(UTC), review_sentence(state), amended=differs_from_diagnosis(state)
    )
    write_json_atomic(folder / FHIR_REVIEWED_JSON, bundle, indent=2)
    return FHIR_REVIEWED_JSON


def _read_bundle(path: Path) -> dict[str, Any] | None:
    """The bundle written at diagnosis; None, logged, when the file is damaged, which holds up no review."""
    try:
        bundle = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        bundle = None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or not bundle.get("entry"):
        log.warning("%s: not a FHIR bundle; no reviewed bundle written", path)
        return None
    return bundle


def _current_report(report: dict[str, Any], state: FindingState) -> ReportInput:
    """The report's patient with the finding's current location, cross-check and referrals."""
    check = current_crosscheck(state)
    referral = state.referral
    return ReportInput.model_validate(
        {
            "patient": report["patient"],
            "locate": state.location,
            "crosscheck": check.model_copy(update={"needs_review": state.needs_review}) if check else None,
            "referrals": (referral.result.get("recommendations") or []) if referral else [],
        }
    )
