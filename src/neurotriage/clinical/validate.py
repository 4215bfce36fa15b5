"""Field parsers shared by the intake commands and the CSV importers.

Each takes the raw text of one field and returns the typed value, or raises ValueError with a
message that follows the field's name, such as "'95' is outside -90..90" (the caller adds the name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

# Never part of a stored text: C0 and C1 control characters and DEL (a NUL is stored by SQLite and
# refused by PostgreSQL; a tab or newline breaks lists and exports), line and paragraph separators,
# and the bidirectional marks, embeddings, overrides and isolates, which make a name read
# differently on screen from how it sorts and matches a search.
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _filled(raw: str | None, required: bool) -> str | None:
    """The stripped text, None when blank and optional; blank and required is an error."""
    value = (raw or "").strip()
    if not value and required:
        raise ValueError("is empty")
    return value or None


def _visible(raw: str | None) -> None:
    """Refuse text holding a character of _HIDDEN, naming it by code point and position."""
    found = _HIDDEN.search(raw or "")
    if found is not None:
        char = found.group()
        kind = "a control character" if char <= "\x9f" else "an invisible formatting character"
        raise ValueError(f"contains {kind} (U+{ord(char):04X}) at character {found.start() + 1}")


def text(raw: str | None, max_len: int, required: bool = True) -> str | None:
    """A trimmed string without control or bidirectional formatting characters; empty is None, or an
    error when required."""
    _visible(raw)
    value = _filled(raw, required)
    if value is None:
        return None
    if len(value) > max_len:
        raise ValueError(f"is longer than {max_len} characters")
    return value


def choice(raw: str | None, allowed: Sequence[str], required: bool = True) -> str | None:
    """One value of `allowed` (case-insensitive); empty is None unless required."""
    value = (raw or "").strip().lower()
    if not value and not required:
        return None
    if value not in allowed:
        raise ValueError(f"{raw!r} is not one of {', '.join(allowed)}")
    return value


def choices(raw: str | None, allowed: Sequence[str]) -> list[str]:
    """A ';'-separated list of values of `allowed`, de-duplicated in order."""
    items = [item.strip().lower() for item in (raw or "").split(";") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise ValueError(f"unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def iso_date(raw: str | None, required: bool = False) -> date | None:
    """A YYYY-MM-DD date, not in the future."""
    value = _filled(raw, required)
    if value is None:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not a date (YYYY-MM-DD)") from None
    if parsed > date.today():
        raise ValueError(f"{raw!r} is in the future")
    return parsed


def number(raw: str | None, low: float, high: float, required: bool = True) -> float | None:
    """A finite number within [low, high]."""
    value = _filled(raw, required)
    if value is None:
        return None
    try:
        parsed = float(value)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not low <= parsed <= high:
        raise ValueError(f"{raw!r} is outside {low:g}..{high:g}")
    return parsed


def whole(raw: str | None, low: int, high: int) -> int:
    """A whole number within [low, high]."""
    value = (raw or "").strip()
    if not value.lstrip("-").isdigit():
        raise ValueError(f"{raw!r} is not a whole number")
    parsed = int(value)
    if not low <= parsed <= high:
        raise ValueError(f"{raw!r} is outside {low}..{high}")
    return parsed


def flag(raw: str | None) -> bool:
    """true/false, yes/no or 1/0."""
    value = (raw or "").strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise ValueError(f"{raw!r} is not true/false")
