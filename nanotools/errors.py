"""The project's own exception types.

Every problem a user can cause (a bad file, a bad parameter) raises a
subclass of :class:`NanotoolsError`; the command line turns it into one
``error: ...`` line and exit status 2. Anything else is a bug.
"""
from __future__ import annotations

__all__ = ["NanotoolsError", "InputError", "ParameterError"]


class NanotoolsError(Exception):
    """Base class for errors caused by the user's input, not by a bug.

    Parameters
    ----------
    message
        What is wrong, in one sentence.
    path
        The file the problem is in, if there is one; it is named in the
        message so the user knows where to look.
    """

    def __init__(self, message: str, path: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path:
            return f"{self.message} ({self.path})"
        return self.message


class InputError(NanotoolsError, ValueError):
    """The input map or file cannot be used (missing, unreadable, malformed)."""


class ParameterError(NanotoolsError, ValueError):
    """A parameter name is unknown or its value has the wrong type or range."""
