"""CSV import of hospitals, doctors and patients: every row validated, all or nothing.

Rows are numbered as in a spreadsheet: the header is row 1, the first data row is row 2. Any error
in any row means nothing is imported; the message lists the errors by row and column. The file is
read, checked and inserted in batches, so memory does not grow with its length; a savepoint takes
the inserted batches back when a later row fails.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from neurotriage.clinical import mrn as mrns
from neurotriage.clinical import validate
from neurotriage.clinical.knowledge import REGIONS
from neurotriage.clinical.models import CAPABILITIES, DOMINANCE, SEXES, SPECIALTIES, Doctor, Hospital, Patient
from neurotriage.errors import UserError
from neurotriage.folding import fold

MAX_LISTED_ERRORS = 20
BATCH_ROWS = 1_000
Error = tuple[int, str, str]  # (row, column, message)
Parsed = list[tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class Column:
    """How to parse one CSV column, and whether the header must contain it."""

    parse: Callable[[str | None], Any]
    required: bool = False


def _optional_text(max_len: int) -> Callable[[str | None], str]:
    return lambda raw: validate.text(raw, max_len, required=False) or ""


SPECS: dict[str, dict[str, Column]] = {
    "hospitals": {
        "code": Column(partial(validate.text, max_len=40), True),
        "name": Column(partial(validate.text, max_len=200), True),
        "address": Column(_optional_text(300)),
        "city": Column(partial(validate.text, max_len=120), True),
        "country": Column(_optional_text(120)),
        "lat": Column(partial(validate.number, low=-90, high=90), True),
        "lon": Column(partial(validate.number, low=-180, high=180), True),
        "capabilities": Column(partial(validate.choices, allowed=CAPABILITIES)),
    },
    "doctors": {
        "name": Column(partial(validate.text, max_len=200), True),
        "hospital_code": Column(partial(validate.text, max_len=40), True),
        "specialty": Column(partial(validate.choice, allowed=SPECIALTIES), True),
        "expertise": Column(partial(validate.choices, allowed=REGIONS)),
        "accepting": Column(lambda raw: validate.flag(raw or "true")),
        "wait_days": Column(lambda raw: validate.whole(raw or "0", 0, 3650)),
    },
    "patients": {
        "name": Column(partial(validate.text, max_len=200), True),
        "sex": Column(lambda raw: validate.choice(raw or "unknown", SEXES)),
        "birth_date": Column(validate.iso_date),
        "city": Column(_optional_text(120)),
        "lat": Column(partial(validate.number, low=-90, high=90, required=False)),
        "lon": Column(partial(validate.number, low=-180, high=180, required=False)),
        "language_dominance": Column(lambda raw: validate.choice(raw or "left", DOMINANCE)),
        "mrn": Column(_optional_text(mrns.MAX_LEN)),
        "mrn_issuer": Column(_optional_text(mrns.MAX_LEN)),
    },
}


Row = tuple[int, list[str]]  # (row number, cells)
Person = tuple[str, date]  # (folded name, birth date): the key of a probable duplicate patient
SAME_PERSON = " (same name and birth date)"


def _opened(path: Path) -> TextIO:
    """The file opened as UTF-8 text (a BOM from spreadsheet exports is accepted)."""
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror})") from None


def _records(path: Path, handle: TextIO) -> Iterator[Row]:
    """Every line of the file as (row number, cells), read as needed.

    No field may hold a line break, so a quoted field that runs past the end of its row is a quote
    left open, which would otherwise swallow the following rows into one field.
    """
    reader = csv.reader(handle, strict=True)
    while True:
        number = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None
        except csv.Error as exc:
            if reader.line_num > number or str(exc) == "unexpected end of data":
                raise _unclosed_quote(path, number) from None
            raise UserError(f"{path}: row {number}: malformed CSV ({exc}); nothing imported") from None
        if reader.line_num > number:
            raise _unclosed_quote(path, number)
        yield number, cells


def _unclosed_quote(path: Path, number: int) -> UserError:
    return UserError(f"{path}: row {number}: a quote opened in this row is not closed within it; nothing imported")


def _header(path: Path, records: Iterator[Row]) -> list[str]:
    """The column names of the first row."""
    first = next(records, None)
    if first is None:
        raise UserError(f"{path}: empty file, expected a header row")
    return [name.strip() for name in first[1]]


def _check_header(path: Path, kind: str, header: Sequence[str]) -> None:
    spec = SPECS[kind]
    missing = [c for c, col in spec.items() if col.required and c not in header]
    unknown = [c for c in header if c not in spec]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    problems = [
        f"missing column(s) {', '.join(missing)}" if missing else "",
        f"unknown column(s) {', '.join(unknown)}" if unknown else "",
        f"repeated column(s) {', '.join(duplicated)}" if duplicated else "",
    ]
    if any(problems):
        found = "; ".join(p for p in problems if p)
        raise UserError(f"{path}: {found}; {kind} columns are {', '.join(spec)}; nothing imported")


def _batches(records: Iterable[Row], size: int) -> Iterator[list[Row]]:
    """The non-blank rows, `size` at a time."""
    rows = ((number, cells) for number, cells in records if any(cell.strip() for cell in cells))
    while batch := list(islice(rows, size)):
        yield batch


def _parse_row(kind: str, header: Sequence[str], number: int, cells: list[str]) -> tuple[dict[str, Any], list[Error]]:
    """The typed values of one row, and the errors of its fields."""
    errors = [(number, "-", "more fields than the header has columns")] if len(cells) > len(header) else []
    by_column = dict(zip(header, cells, strict=False))
    values = {}
    for column, how in SPECS[kind].items():
        try:
            values[column] = how.parse(by_column.get(column))
        except ValueError as exc:
            errors.append((number, column, str(exc)))
    return values, errors


def _hospitals(session: Session, parsed: Parsed, seen: dict[str, int]) -> list[Error]:
    """Refuse codes repeated in the file (`seen` holds those of earlier rows) or already in the database."""
    codes = [v["code"] for _, v in parsed if v.get("code")]
    taken = set(session.scalars(select(Hospital.code).where(Hospital.code.in_(codes))))
    errors = []
    for number, values in parsed:
        code = values.get("code")
        # Earlier rows of this file may already be inserted: a repeat is "twice in the file".
        if code in seen:
            errors.append((number, "code", f"{code!r} appears twice in the file"))
        elif code in taken:
            errors.append((number, "code", f"{code!r} already exists in the database"))
        if code is not None:
            seen.setdefault(code, number)
    return errors


def _doctors(session: Session, parsed: Parsed, ids: dict[str, int]) -> list[Error]:
    """Replace hospital_code by the id of a hospital in the database (`ids` caches those found)."""
    wanted = {v["hospital_code"] for _, v in parsed if v.get("hospital_code")} - ids.keys()
    ids.update(session.execute(select(Hospital.code, Hospital.id).where(Hospital.code.in_(wanted))).all())
    errors = []
    for number, values in parsed:
        code = values.pop("hospital_code", None)
        if code is not None and code not in ids:
            errors.append((number, "hospital_code", f"no hospital with code {code!r} (import hospitals first)"))
        values["hospital_id"] = ids.get(code)
    return errors


def _patients(session: Session, parsed: Parsed, seen: dict[tuple[str, str | None], int]) -> list[Error]:
    """Check that coordinates come in pairs and MRNs are unique; blank optional text is stored as NULL."""
    for _, values in parsed:
        values.update({k: None for k, v in values.items() if v == ""})
    errors = [
        (number, "lat" if v.get("lat") is None else "lon", "latitude and longitude must be given together")
        for number, v in parsed
        if "lat" in v and "lon" in v and (v["lat"] is None) != (v["lon"] is None)
    ]
    return errors + _mrn_errors(session, parsed, seen)


def _mrn_errors(session: Session, parsed: Parsed, seen: dict[tuple[str, str | None], int]) -> list[Error]:
    """Refuse an issuer without an MRN, and an MRN and issuer repeated in the file (`seen` holds those of
    earlier rows) or held by a stored patient."""
    wanted = {v["mrn"] for _, v in parsed if v.get("mrn")}
    query = select(Patient.mrn, Patient.mrn_issuer, Patient.id).where(Patient.mrn.in_(wanted))
    stored = {(mrn, issuer): patient_id for mrn, issuer, patient_id in session.execute(query)} if wanted else {}
    errors = []
    for number, values in parsed:
        mrn, issuer = values.get("mrn"), values.get("mrn_issuer")
        if mrn is None:
            if issuer is not None:
                errors.append((number, "mrn_issuer", "an issuer needs an MRN in the same row"))
            continue
        key, what = (mrn, issuer), mrns.describe(mrn, issuer)
        # Earlier rows of this file may already be inserted: a repeat is "twice in the file".
        if key in seen:
            errors.append((number, "mrn", f"{what} also on row {seen[key]}"))
        elif key in stored:
            errors.append((number, "mrn", f"{what} already belongs to patient {stored[key]} in the database"))
        seen.setdefault(key, number)
    return errors


def _person(name: str, birth_date: date) -> Person:
    """A patient's name folded for case and runs of whitespace, with the birth date."""
    return " ".join(name.split()).casefold(), birth_date


@dataclass
class _Duplicates:
    """Finds probable duplicate patients: the same name and birth date as an earlier row of the file
    or a patient stored before the import. A name alone is no evidence: rows without a birth date
    are never flagged."""

    session: Session
    stored_up_to: int  # the highest patient id before the import: above it are this file's rows
    seen: dict[Person, int] = field(default_factory=dict)  # the first row of each person
    found: int = 0

    def _stored(self, dates: set[date]) -> dict[Person, int]:
        """The first stored patient of each person born on one of `dates`."""
        query = select(Patient.id, Patient.name, Patient.birth_date).where(
            Patient.id <= self.stored_up_to, Patient.birth_date.in_(dates)
        )
        stored: dict[Person, int] = {}
        for patient_id, name, born in self.session.execute(query.order_by(Patient.id)):
            stored.setdefault(_person(name, born), patient_id)
        return stored

    def check(self, parsed: Parsed) -> list[Error]:
        """The errors of the rows of a batch that duplicate an earlier row or a stored patient."""
        keyed = [(n, _person(v["name"], v["birth_date"])) for n, v in parsed if v.get("name") and v.get("birth_date")]
        stored = self._stored({born for _, (_, born) in keyed}) if self.stored_up_to else {}
        errors = []
        for number, person in keyed:
            if person in self.seen:
                errors.append((number, "name", f"probable duplicate of row {self.seen[person]}{SAME_PERSON}"))
            elif person in stored:
                errors.append(
                    (number, "name", f"probable duplicate of patient {stored[person]} in the database{SAME_PERSON}")
                )
            self.seen.setdefault(person, number)
        self.found += len(errors)
        return errors


# The table of each kind, and how a batch of parsed rows is checked and turned into its rows.
KINDS: dict[str, tuple[type, Callable[[Session, Parsed, dict], list[Error]]]] = {
    "hospitals": (Hospital, _hospitals),
    "doctors": (Doctor, _doctors),
    "patients": (Patient, _patients),
}


@dataclass
class _Run:
    """One import under way: what earlier rows held, and the errors found so far."""

    session: Session
    kind: str
    header: list[str]
    duplicates: _Duplicates | None  # None when probable duplicate patients are allowed
    seen: dict = field(default_factory=dict)  # what the kind's check keeps of earlier rows
    listed: list[Error] = field(default_factory=list)
    errors: int = 0
    rows: int = 0

    def check(self, batch: list[Row]) -> list[dict[str, Any]]:
        """The batch's values as table rows, after recording the errors of its rows."""
        parsed, found = [], []
        for number, cells in batch:
            values, errors = _parse_row(self.kind, self.header, number, cells)
            parsed.append((number, values))
            found += errors
        found += KINDS[self.kind][1](self.session, parsed, self.seen)
        if self.duplicates is not None:
            found += self.duplicates.check(parsed)
        # Batches come in row order, so sorting each keeps the whole listing in row order.
        self.listed += sorted(found)[: MAX_LISTED_ERRORS - len(self.listed)]
        self.errors += len(found)
        self.rows += len(parsed)
        return [values for _, values in parsed]


def _format(path: Path, run: _Run) -> str:
    listed = "; ".join(f"row {row}, column {column}: {message}" for row, column, message in run.listed)
    more = f"; and {run.errors - len(run.listed)} more" if run.errors > len(run.listed) else ""
    return f"{path}: nothing imported, {run.errors} error(s): {listed}{more}"


def import_csv(session: Session, kind: str, path: Path, *, allow_duplicates: bool = False) -> int:
    """Validate every row of `path` and add them all, or raise UserError listing the problems.

    A patient with the same name and birth date as another row, or as a patient already in the
    database, is refused as a probable duplicate unless `allow_duplicates`; the error's field is then
    "allow_duplicates". Rows go in BATCH_ROWS at a time inside a savepoint, so a failed import
    leaves the session's transaction as it was.
    """
    model = KINDS[kind][0]
    with _opened(path) as handle, session.begin_nested():
        records = _records(path, handle)
        header = _header(path, records)
        _check_header(path, kind, header)
        duplicates = None
        if kind == "patients" and not allow_duplicates:
            duplicates = _Duplicates(session, session.scalar(select(func.max(Patient.id))) or 0)
        run = _Run(session, kind, header, duplicates)
        for batch in _batches(records, BATCH_ROWS):
            rows = run.check(batch)
            if not run.errors:
                if model is Patient:
                    rows = [row | {"name_folded": fold(row["name"])} for row in rows]
                session.execute(insert(model), rows)
        if not run.rows:
            raise UserError(f"{path}: no data rows after the header")
        if run.errors:
            raise UserError(_format(path, run), field="allow_duplicates" if duplicates and duplicates.found else None)
    return run.rows
