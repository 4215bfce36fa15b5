"""The one exception type that means "the user gave us something wrong"."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2.

    The message must name the file, row or field and say what is wrong. `field` names the input
    (a library argument such as `lat` or `patient_id`) so that each front end can point at its own
    control: the CLI at a flag, the web at a form field. Library messages never name flags.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(UserError):
    """A record named by its id does not exist (the web answers 404)."""


class Forbidden(UserError):
    """The user may not see or change this record (the web answers 403). `patient_id` names the patient
    whose care team the user is not in, so the page can offer a break-glass grant."""

    def __init__(self, message: str, patient_id: int | None = None) -> None:
        super().__init__(message)
        self.patient_id = patient_id
