"""Errors that mean "bad input", as opposed to a bug.

``bench`` (``bench.cli.main``) prints a ``UserError`` as one line, ``bench <command>: error: <message>``,
and exits with status 2: the message says what was wrong, what was expected and where (the file, key
or option). Every other exception is a bug in ``bench`` and is shown with its full traceback. Raise
the subclass that says what kind of input was wrong; each also derives from the built-in exception
such code raised before (``ValueError``, ``KeyError``, ``FileNotFoundError``), so ``except ValueError``
keeps catching it. Standard library only: every package of the project may import it.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user; its message is complete on one line (or a short list of lines)."""


class InvalidInput(UserError, ValueError):
    """A value, an option, a combination of options or a file's content that is not valid."""


class UnknownName(UserError, KeyError):
    """A name that is not known (an architecture, dataset, setting, profile, ...); the message lists
    the known ones or the closest matches."""

    def __str__(self) -> str:  # KeyError quotes its message; a user error reads as plain text
        return str(self.args[0]) if self.args else ""


class MissingInput(UserError, FileNotFoundError):
    """A file or folder the command needs is not there."""


class NoResults(UserError, ValueError):
    """The stored results cannot answer the request: none yet, not finished for every architecture,
    or results that may not be compared (the message says which and how to get them)."""
