"""CSV import of hospitals, doctors and patients: every row validated, all or nothing.

Rows are numbered as in a spreadsheet: the header is row 1, the first data row is row 2. Any error
in any row means nothing is imported; the message lists the errors by row and column.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from neurotriage.clinical import validate
from neurotriage.clinical.knowledge import REGIONS
from neurotriage.clinical.models import CAPABILITIES, DOMINANCE, SEXES, SPECIALTIES, Doctor, Hospital, Patient
from neurotriage.errors import UserError

MAX_LISTED_ERRORS = 20
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
    },
}


Row = tuple[int, dict[str, str], bool]  # (row number, cells by column, has extra cells)


def _read(path: Path) -> tuple[list[str], list[Row]]:
    """Header and non-blank rows of a UTF-8 CSV file (a BOM from spreadsheet exports is accepted)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None
    if not table:
        raise UserError(f"{path}: empty file, expected a header row")
    header = [name.strip() for name in table[0]]
    rows = [
        (number, dict(zip(header, cells, strict=False)), len(cells) > len(header))
        for number, cells in enumerate(table[1:], start=2)
        if any(cell.strip() for cell in cells)
    ]
    if not rows:
        raise UserError(f"{path}: no data rows after the header")
    return header, rows


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


def _parse_rows(kind: str, rows: list[Row]) -> tuple[Parsed, list[Error]]:
    """Parse every field of every row, collecting all errors."""
    spec, parsed, errors = SPECS[kind], [], []
    for number, cells, extra in rows:
        if extra:
            errors.append((number, "-", "more fields than the header has columns"))
        values = {}
        for column, how in spec.items():
            try:
                values[column] = how.parse(cells.get(column))
            except ValueError as exc:
                errors.append((number, column, str(exc)))
        parsed.append((number, values))
    return parsed, errors


def _hospitals(session: Session, parsed: Parsed) -> tuple[list[Hospital], list[Error]]:
    """Hospitals, rejecting codes repeated in the file or already in the database."""
    codes = [v["code"] for _, v in parsed if v.get("code")]
    taken = set(session.scalars(select(Hospital.code).where(Hospital.code.in_(codes))))
    errors, seen = [], set()
    for number, values in parsed:
        code = values.get("code")
        if code in taken:
            errors.append((number, "code", f"{code!r} already exists in the database"))
        elif code in seen:
            errors.append((number, "code", f"{code!r} appears twice in the file"))
        seen.add(code)
    return [Hospital(**v) for _, v in parsed], errors


def _doctors(session: Session, parsed: Parsed) -> tuple[list[Doctor], list[Error]]:
    """Doctors, resolving hospital_code against the hospitals already in the database."""
    codes = {v["hospital_code"] for _, v in parsed if v.get("hospital_code")}
    ids = {c: i for c, i in session.execute(select(Hospital.code, Hospital.id).where(Hospital.code.in_(codes)))}
    errors, doctors = [], []
    for number, values in parsed:
        code = values.pop("hospital_code", None)
        if code is not None and code not in ids:
            errors.append((number, "hospital_code", f"no hospital with code {code!r} (import hospitals first)"))
        doctors.append(Doctor(hospital_id=ids.get(code), **values))
    return doctors, errors


def _patients(_session: Session, parsed: Parsed) -> tuple[list[Patient], list[Error]]:
    """Patients, checking that coordinates come in pairs."""
    errors = [
        (number, "lat" if v.get("lat") is None else "lon", "latitude and longitude must be given together")
        for number, v in parsed
        if "lat" in v and "lon" in v and (v["lat"] is None) != (v["lon"] is None)
    ]
    return [Patient(**{k: None if v == "" else v for k, v in values.items()}) for _, values in parsed], errors


BUILDERS = {"hospitals": _hospitals, "doctors": _doctors, "patients": _patients}


def _format(path: Path, errors: list[Error]) -> str:
    listed = "; ".join(f"row {row}, column {column}: {message}" for row, column, message in errors[:MAX_LISTED_ERRORS])
    more = f"; and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
    return f"{path}: nothing imported, {len(errors)} error(s): {listed}{more}"


def import_csv(session: Session, kind: str, path: Path) -> int:
    """Validate every row of `path` and add them all, or raise UserError listing every problem."""
    header, rows = _read(path)
    _check_header(path, kind, header)
    parsed, errors = _parse_rows(kind, rows)
    objects, more = BUILDERS[kind](session, parsed)
    errors = sorted(errors + more)
    if errors:
        raise UserError(_format(path, errors))
    session.add_all(objects)
    session.flush()
    return len(objects)
