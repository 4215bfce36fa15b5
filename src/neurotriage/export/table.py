"""findings.csv: one row per exported study, with pseudonyms, shifted dates and coded symptoms.

Lists in a cell are ';'-separated `name:side` items (`frontal_lobe:right`, `hemiparesis:left`).
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from neurotriage.anatomy.location import Location, Volumes, parse_location
from neurotriage.export.plan import CodedSymptom, StudyRecord
from neurotriage.export.pseudonyms import Pseudonyms

AGE_CAP = 90  # older ages are written as 90: few people are older, which would single them out
FIRST_COLUMNS = ("patient", "study", "study_date", "age_at_study", "sex", "language_dominance", "model_id")
LOCATION_COLUMNS = ("tumour_found", "hemisphere", "primary_region", "lobes", "areas", "crosses_midline")
LOCATION_COLUMNS += ("eloquent_involved", "eloquent_adjacent")
VOLUME_COLUMNS = tuple(f"{name}_ml" for name in Volumes.model_fields)
LAST_COLUMNS = ("crosscheck_verdict", "symptoms", "symptoms_snomed")


def age_at_study(birth: date | None, day: date | None) -> int | None:
    """Whole years from `birth` to `day`, at most AGE_CAP; None when either date is unknown."""
    if birth is None or day is None:
        return None
    years = day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
    return min(years, AGE_CAP)


def _items(pairs: list[tuple[str, str | None]]) -> str:
    return ";".join(f"{name}:{side}" if side else name for name, side in pairs)


def _location_cells(location: Location) -> dict[str, Any]:
    return {
        "tumour_found": location.has_tumour,
        "hemisphere": location.hemisphere,
        "primary_region": location.primary_region,
        "lobes": _items([(r.name, r.side) for r in location.regions if r.kind == "lobe"]),
        "areas": _items([(r.name, r.side) for r in location.regions if r.kind == "area"]),
        "crosses_midline": location.crosses_midline,
        "eloquent_involved": _items([(e.name, e.side) for e in location.eloquent if e.involved]),
        "eloquent_adjacent": _items([(e.name, e.side) for e in location.eloquent if not e.involved]),
        **{f"{name}_ml": ml for name, ml in location.volumes_ml.model_dump().items()},
        **{f"vasari_{code}": feature.get("code") for code, feature in (location.vasari or {}).items()},
    }


def _symptom_cells(symptoms: tuple[CodedSymptom, ...]) -> dict[str, str]:
    return {
        "symptoms": _items([(s.code, s.side) for s in symptoms]),
        "symptoms_snomed": _items([(s.snomed, s.side) for s in symptoms if s.snomed]),
    }


def finding_row(study: StudyRecord, ids: Pseudonyms) -> dict[str, Any]:
    """The CSV row of one study: pseudonyms, shifted date, age, location, VASARI codes, verdict, symptoms."""
    patient = study.patient
    day = ids.shift(study.study_date, patient.id)
    return {
        "patient": ids.patient(patient.id),
        "study": ids.study(study.study_id),
        "study_date": day.isoformat() if day else None,
        "age_at_study": age_at_study(patient.birth_date, study.study_date),
        "sex": patient.sex,
        "language_dominance": patient.language_dominance,
        "model_id": study.model_id,
        **_location_cells(parse_location(study.locate, f"finding {study.finding_id}")),
        "crosscheck_verdict": study.verdict,
        **_symptom_cells(study.symptoms),
    }


def _vasari_columns(rows: list[dict[str, Any]]) -> list[str]:
    found = {key for row in rows for key in row if key.startswith("vasari_F")}
    return sorted(found, key=lambda key: int(key.removeprefix("vasari_F")))


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the rows as CSV with a header line (VASARI columns: those any row has, in feature order)."""
    columns = [*FIRST_COLUMNS, *LOCATION_COLUMNS, *VOLUME_COLUMNS, *_vasari_columns(rows), *LAST_COLUMNS]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _cell(row.get(column)) for column in columns})
