"""Errors that mean "bad input", as opposed to a bug.

``bench`` (``bench.cli.main``) prints a ``UserError`` as one line, ``bench <command>: error: <message>``,
and exits with status 2: the message says what was wrong, what was expected and where (the file, key
or option). Every other exception is a bug in ``bench`` and is shown with its full traceback. Raise
the subclass that says what kind of input was wrong; each also derives from the built-in exception
such code raised before (``ValueError``, ``KeyError``, ``FileNotFoundError``), so ``except ValueError``
keeps catching it. Standard library only: every package of the project may import it.
"""

from __future__ import annotations

import errno


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


class ResultWarning(UserWarning):
    """Something a reader of the output must know (a stored result that cannot be trusted, a test on too few
    units, ...); the message names the file or the comparison and what is wrong. ``bench`` prints it as one
    line, ``bench: warning: <message>``."""


#: OS errors that say something about the machine or a path the user gave, not about bench: a full disk, a
#: read-only or forbidden folder, a path that cannot exist. Shown as one line, like a ``UserError``.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: "no space left on device while writing",
    errno.EDQUOT: "disk quota exceeded while writing",
    errno.EROFS: "read-only file system:",
    errno.EACCES: "permission denied:",
    errno.EPERM: "operation not permitted:",
    errno.ENOENT: "no such file or folder (and it cannot be created there):",
    errno.ENOTDIR: "not a folder:",
}
#: Of those, the ones that stop every later write too: a sweep cannot go on past them.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def environment_error(exc: BaseException) -> str | None:
    """The one-line message for an OS error about the environment (``ENVIRONMENT_ERRNOS``, with the path
    it concerns), or None for any other error, which is a bug and keeps its traceback."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS or exc.filename is None:
        return None
    return f"{ENVIRONMENT_ERRNOS[exc.errno]} {exc.filename}"
