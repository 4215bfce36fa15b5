"""Display text shared by the HTML and FHIR writers: one way to say a value or its absence."""

from __future__ import annotations

import re
from typing import Any

NOT_AVAILABLE = "not available"
NO_TUMOUR_SENTENCE = "No tumour found on this scan."
PROVISIONAL_REFERRAL = (
    "Provisional referral: the patient record was created from a received study and is not confirmed;"
    " the referral is final only once a clinician confirms the patient."
)
IDENTIFIER = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")


def fmt(value: Any) -> str:
    """Format one value for display; None becomes 'not available'."""
    if value is None or value == "":
        return NOT_AVAILABLE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt(v)}" for k, v in value.items()) or "none"
    text = str(value)
    # snake_case vocabulary (frontal_lobe, primary_motor) reads better as words.
    return text.replace("_", " ") if IDENTIFIER.fullmatch(text) else text


def fmt_score(value: Any) -> str:
    """A score in [0, 1] (e.g. concordance) with the two decimals it needs."""
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else fmt(value)
