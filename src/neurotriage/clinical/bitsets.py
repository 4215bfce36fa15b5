"""A JSON list of names (a doctor's expertise) kept beside it as an integer bit set.

The referral search asks "does this doctor list X?" of thousands of candidates per query; a bit
test on an integer is far cheaper there than a JSON containment test. The database derives the
bits from the list itself (a stored generated column), so every way of writing a row keeps them
right, bulk inserts included.
"""

from __future__ import annotations

from collections.abc import Sequence

from neurotriage.vocabulary import ELOQUENT, LOBES

# Bit i of doctors.expertise_bits is set when the doctor lists EXPERTISE_NAMES[i].
EXPERTISE_NAMES = LOBES + ELOQUENT


def bit(name: str, names: Sequence[str] = EXPERTISE_NAMES) -> int:
    """The bit that stands for `name`."""
    return 1 << names.index(name)


def bits_sql(column: str, names: Sequence[str]) -> str:
    """SQL for the bit set of the JSON list in `column`, the same on SQLite and PostgreSQL.

    The JSON text holds each listed name in double quotes, so a name is listed exactly when removing
    its quoted form changes the text (`replace` needs no LIKE escaping of '_' and no '%')."""
    text = f"CAST({column} AS TEXT)"
    quoted = [f"'\"{name}\"'" for name in names]
    terms = [f"CASE WHEN replace({text}, {q}, '') <> {text} THEN {1 << i} ELSE 0 END" for i, q in enumerate(quoted)]
    return " + ".join(terms)
