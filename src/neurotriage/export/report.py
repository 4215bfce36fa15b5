"""A finding's report.json without identities, rebuilt from the stored one.

Only what is listed here is carried over: a section or key the report gains later stays out until it
is added on purpose. The patient is reduced to a pseudonym, sex, language dominance and age; dates are
shifted; referrals (doctors and distances from the patient's home), the finding key, input paths and
the raw study's name are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from neurotriage.errors import UserError
from neurotriage.export.pseudonyms import Pseudonyms
from neurotriage.report.folder import REPORT_JSON

SYMPTOM_KEYS = ("code", "name", "snomed", "side", "onset", "severity")
PROVENANCE_KEYS = ("software_version", "model_id", "model_sha256", "tta", "postprocess")
MODEL_KEYS = ("model_id", "sha256")  # an ensemble member's; its origin is a folder on this installation
UNCERTAINTY_DROPPED = ("map",)  # the uncertainty map's file name: the export does not carry the map
LOCATE_DROPPED = ("source",)  # the label map's path
SYMPTOM_CHECK_DROPPED = ("sources",)


def stored_report(report_dir: str | None, where: str) -> dict[str, Any]:
    """The report.json a finding's report folder holds."""
    path = Path(report_dir, REPORT_JSON) if report_dir else None
    if path is None or not path.is_file():
        raise UserError(f"{where}: its report ({REPORT_JSON}) is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc})") from None


def _without(section: dict[str, Any] | None, dropped: tuple[str, ...]) -> dict[str, Any] | None:
    return None if section is None else {key: value for key, value in section.items() if key not in dropped}


def _symptom(entry: dict[str, Any], shift: Any) -> dict[str, Any]:
    kept = {key: entry.get(key) for key in SYMPTOM_KEYS if key in entry}
    if "onset" in kept:
        kept["onset"] = shift(kept["onset"])
    return kept


def _crosscheck(check: dict[str, Any] | None, shift: Any) -> dict[str, Any] | None:
    """The cross-check (generated from the knowledge base and the location), its onset dates shifted.

    The rules' literature references are left out: they name publishers' cities ('Sunderland, MA'),
    which the identifier check would take for a patient's; the software version identifies them."""
    if check is None:
        return None
    symptoms = [
        {key: value for key, value in entry.items() if key not in SYMPTOM_CHECK_DROPPED}
        | {"onset": shift(entry.get("onset"))}
        for entry in check.get("symptoms", [])
    ]
    return check | {"symptoms": symptoms}


def deidentified_report(
    stored: dict[str, Any],
    ids: Pseudonyms,
    patient_id: int,
    study_id: int,
    *,
    age: int | None,
    files: list[str],
) -> dict[str, Any]:
    """The export's report.json for one finding of patient `patient_id`'s study `study_id`."""

    def shift(day: str | None) -> str | None:
        return ids.shift_text(day, patient_id)

    patient = stored.get("patient") or {}
    locate = stored.get("locate")
    provenance = stored.get("provenance") or {}
    return {
        "notice": stored.get("notice"),
        "patient": {
            "id": ids.patient(patient_id),
            "sex": patient.get("sex"),
            "language_dominance": patient.get("language_dominance"),
            "age_at_study": age,
        },
        "case_id": ids.study(study_id),
        "symptoms": [_symptom(entry, shift) for entry in stored.get("symptoms", [])],
        "locate": _without(locate, LOCATE_DROPPED),
        "crosscheck": _crosscheck(stored.get("crosscheck"), shift),
        "uncertainty": _without(stored.get("uncertainty"), UNCERTAINTY_DROPPED),
        "provenance": {key: provenance.get(key) for key in PROVENANCE_KEYS}
        | {"models": [{key: model.get(key) for key in MODEL_KEYS} for model in provenance.get("models", [])]},
        "files": files,
    }
