"""What can be wrong with a dataset folder: one ``Problem`` per bad file or layout issue, the
``DataError`` that lists them all, and the ``ReadFailure`` a decoder raises for one file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError


@dataclass(frozen=True)
class Problem:
    """One bad file or layout issue. ``kind`` is a short code, ``detail`` says what was expected."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class CaseProblem(Problem):
    """A problem that belongs to one case id, so ``skip=[case_id]`` can exclude it explicitly."""

    case_id: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} [case {self.case_id}]" if self.case_id else text


def case_of(problem: Problem) -> str | None:
    """The case id a problem belongs to, or None for a layout-wide problem."""
    return problem.case_id if isinstance(problem, CaseProblem) else None


class DataError(UserError, ValueError):
    """Raised when a dataset folder does not hold what its layout promises; lists every problem."""

    def __init__(self, dataset: str, root: Path | None, problems: Iterable[Problem], layout: str = "") -> None:
        self.dataset, self.root, self.problems, self.layout = dataset, root, list(problems), layout
        lines = [f"{dataset}: {len(self.problems)} problem(s) in {root}:"]
        lines += [f"  - {p}" for p in self.problems]
        if layout:
            lines.append(f"expected layout:\n{layout}")
        lines.append(
            "Fix or remove these files, or exclude their case ids explicitly "
            "(`bench run --skip ID,ID`; in Python: skip=[case ids])."
        )
        super().__init__("\n".join(lines))


class ReadFailure(Exception):
    """A file that could not be turned into pixels (or into a mask); becomes a ``CaseProblem``.

    ``path`` names the file (and page), ``kind`` is the problem code (``unreadable``, ``non_binary_mask``,
    ``bad_channels``, ...), ``detail`` what was expected and found.
    """

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {path}: {detail}")
        self.path, self.kind, self.detail = path, kind, detail

    def problem(self, case_id: str | None) -> CaseProblem:
        return CaseProblem(self.path, self.kind, self.detail, case_id)
