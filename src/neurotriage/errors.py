"""The one exception type that means "the user gave us something wrong"."""


class UserError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2.

    The message must name the file, row or field and say what is wrong.
    """
