"""Does a raw study belong to the patient it is filed under? Its DICOM MRN, name and birth date, against the record's.

A study for the wrong patient is as serious as a left/right error: its finding would be filed, reported
and referred under someone else's name. Names are compared by their family name (the first DICOM
name component) against the words of the record's name, ignoring case, accents and punctuation,
so "DOE^JANE" matches "Jane Doe"; birth dates must be equal. The study's PatientID must equal the
record's MRN when their issuers agree (an issuer missing on either side is taken to agree); IDs of
two different issuers are numbers of different registers and prove nothing. A tag that is absent
proves nothing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from neurotriage.ingest.dicom import StudyPatient

_WORD = re.compile(r"[A-Z0-9]+")


def patient_mismatches(
    study: StudyPatient | None,
    name: str | None,
    birth_date: date | None,
    mrn: str | None = None,
    mrn_issuer: str | None = None,
) -> list[str]:
    """How the study's patient tags disagree with the record's name, birth date and MRN (empty when they agree)."""
    if study is None:
        return []
    found = []
    same_register = not (study.issuer and mrn_issuer) or study.issuer == mrn_issuer
    if study.patient_id and mrn and same_register and study.patient_id != mrn:
        found.append(f"MRN {_with_issuer(study.patient_id, study.issuer)} in the study, "
                     f"{_with_issuer(mrn, mrn_issuer)} on record")  # fmt: skip
    if study.birth_date and birth_date and study.birth_date != birth_date:
        found.append(f"birth date {study.birth_date.isoformat()} in the study, {birth_date.isoformat()} on record")
    family = _words(study.patient_name.split("^")[0]) if study.patient_name else []
    if family and name and not set(family) <= set(_words(name)):
        found.append(f"name {study.patient_name!r} in the study, {name!r} on record")
    return found


def _with_issuer(mrn: str, issuer: str | None) -> str:
    return f"{mrn!r}" + (f" (issuer {issuer!r})" if issuer else "")


def _words(text: str) -> list[str]:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
    return _WORD.findall(plain)
