"""The password policy: long enough, not a common password, not a repeated or consecutive pattern.

common_passwords.txt holds the 10,000 most frequent entries of the lowercased list Django ships
(django/contrib/auth/common-passwords.txt.gz, 5.2), which Royce Williams built from breached
passwords: https://gist.github.com/roycewilliams/226886fd01572964e1431ac8afc999ce
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from itertools import pairwise

from neurotriage.errors import UserError

MIN_LENGTH = 12


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lowercased."""
    text = files("neurotriage.web").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


def _repeats(text: str) -> bool:
    """Whether `text` is a shorter string written two or more times ("abcabc", "passwordpassword")."""
    sizes = range(1, len(text) // 2 + 1)
    return any(len(text) % size == 0 and text == text[:size] * (len(text) // size) for size in sizes)


def _step(a: str, b: str) -> int:
    """How far `b` lies from `a`; between digits modulo 10, so 9 -> 0 is one step up."""
    distance = ord(b) - ord(a)
    return (distance + 1) % 10 - 1 if a.isdigit() and b.isdigit() else distance


def _consecutive(text: str) -> bool:
    """Whether every character is one step up, or every one step down ("123456789012", "lkjihgfedcba")."""
    steps = {_step(a, b) for a, b in pairwise(text)}
    return steps in ({1}, {-1})


def check_password(password: str) -> None:
    """Refuse a password that is short or easily guessed; UserError names the field."""
    if len(password) < MIN_LENGTH:
        raise UserError(f"password: must be at least {MIN_LENGTH} characters", field="password")
    lowered = password.lower()
    if lowered in common_passwords():
        raise UserError("password: is one of the most common passwords; choose another", field="password")
    if _repeats(lowered) or _consecutive(lowered):
        raise UserError("password: is a repeated or consecutive pattern; choose another", field="password")
