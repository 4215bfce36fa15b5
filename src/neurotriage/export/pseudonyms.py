"""Keyed pseudonyms and per-patient date shifts: HMAC-SHA256 of the database record ids.

The same key and record give the same pseudonym in every export, so exports can be joined; without
the key a pseudonym reveals nothing about the record. Each patient's dates move by one offset of 1
to 365 days, earlier or later (never 0), so the intervals between a patient's dates are kept.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, timedelta

MAX_SHIFT_DAYS = 365
DIGITS = 16  # hex digits of a pseudonym: 64 bits, no collision in any realistic cohort


@dataclass(frozen=True)
class Pseudonyms:
    """Pseudonyms and date offsets under one export key."""

    key: bytes

    def _digest(self, purpose: str, record_id: int) -> bytes:
        return hmac.new(self.key, f"{purpose}:{record_id}".encode(), hashlib.sha256).digest()

    def patient(self, patient_id: int) -> str:
        """The patient's pseudonym, e.g. 'P3F0A...' (letters and digits only)."""
        return "P" + self._digest("patient", patient_id).hex()[:DIGITS].upper()

    def study(self, study_id: int) -> str:
        """The study's pseudonym, which is also its exported BraTS case ID, e.g. 'S9C21...'."""
        return "S" + self._digest("study", study_id).hex()[:DIGITS].upper()

    def day_offset(self, patient_id: int) -> int:
        """The patient's date shift in days: -365..-1 or 1..365."""
        drawn = int.from_bytes(self._digest("date-offset", patient_id)[:8], "big") % (2 * MAX_SHIFT_DAYS)
        return drawn - MAX_SHIFT_DAYS if drawn < MAX_SHIFT_DAYS else drawn - MAX_SHIFT_DAYS + 1

    def shift(self, day: date | None, patient_id: int) -> date | None:
        """`day` moved by the patient's offset (None stays None)."""
        return None if day is None else day + timedelta(days=self.day_offset(patient_id))

    def shift_text(self, day: str | None, patient_id: int) -> str | None:
        """An ISO date string moved by the patient's offset; anything that is not an ISO date is dropped."""
        try:
            return self.shift(date.fromisoformat(day), patient_id).isoformat() if day else None
        except (TypeError, ValueError):
            return None
