"""Does a raw study belong to the patient it is filed under? Its DICOM name and birth date, against the record's.

A study for the wrong patient is as serious as a left/right error: its finding would be filed, reported
and referred under someone else's name. Names are compared by their family name (the first DICOM
name component) against the words of the record's name, ignoring case, accents and punctuation,
so "DOE^JANE" matches "Jane Doe"; birth dates must be equal. A tag that is absent proves nothing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from neurotriage.ingest.dicom import StudyPatient

_WORD = re.compile(r"[A-Z0-9]+")


def patient_mismatches(study: StudyPatient | None, name: str | None, birth_date: date | None) -> list[str]:
    """How the study's patient tags disagree with the record's name and birth date (empty when they agree)."""
    if study is None:
        return []
    found = []
    if study.birth_date and birth_date and study.birth_date != birth_date:
        found.append(f"birth date {study.birth_date.isoformat()} in the study, {birth_date.isoformat()} on record")
    family = _words(study.patient_name.split("^")[0]) if study.patient_name else []
    if family and name and not set(family) <= set(_words(name)):
        found.append(f"name {study.patient_name!r} in the study, {name!r} on record")
    return found


def _words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
    return _WORD.findall(plain)
