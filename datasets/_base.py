"""Shared dataset types: a ``Case`` record, problems found in a layout, and the ``SegDataset`` base.

A dataset lists its cases from the native layout and reads one case as ``(image, mask)``:
``image`` is H x W x C uint8 (C = 1 or 3, alpha dropped), ``mask`` is H x W bool (True = the
foreground class named in the dataset's docstring). Resizing, normalisation, patching and caching
happen later (``bench.datasets.prepare``), identically for every dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable

import numpy as np

from bench.errors import UserError


@dataclass(frozen=True)
class Case:
    """One image of a dataset.

    ``case_id`` is stable across runs and machines (derived from file names, never from order);
    ``group`` is the unit that must not cross a split boundary (LGG: patient folder; otherwise the
    case itself). ``mask_paths`` holds one file, or one file per instance (DSB-2018 nuclei).
    ``page`` indexes a multi-page TIFF stack (ISBI-2012), else None.
    """

    case_id: str
    group: str
    image_path: Path | None = None
    mask_paths: tuple[Path, ...] = ()
    page: int | None = None
    meta: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Problem:
    """One bad file or layout issue. ``kind`` is a short code, ``detail`` says what was expected."""

    path: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


class DataError(UserError, ValueError):
    """Raised when a dataset folder does not hold what its layout promises; lists every problem."""

    def __init__(self, dataset: str, root: Path | None, problems: Iterable[Problem], layout: str = "") -> None:
        self.dataset, self.root, self.problems, self.layout = dataset, root, list(problems), layout
        lines = [f"{dataset}: {len(self.problems)} problem(s) in {root}:"]
        lines += [f"  - {p}" for p in self.problems]
        if layout:
            lines.append(f"expected layout:\n{layout}")
        lines.append("Fix or remove these files, or exclude their case ids explicitly "
                     "(`bench run --skip ID,ID`; in Python: skip=[case ids]).")
        super().__init__("\n".join(lines))


@dataclass
class CheckReport:
    """What ``bench data check`` prints: counts found and every problem, by path."""

    dataset: str
    root: Path | None
    layout: str
    n_cases: int = 0
    n_groups: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class SegDataset:
    """Base class of the native-layout readers. Subclasses set the class attributes and implement
    ``list_cases`` (walk the layout, no pixel decoding) and ``read`` (decode one case)."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    channels: ClassVar[int] = 3
    #: Number of images in the paper's Table 1 (for the Table 1 comparison).
    paper_count: ClassVar[int | None] = None
    #: True for ISBI-2012 and GlaS-2015, trained on 256x256 patches in the paper.
    patch_based: ClassVar[bool] = False
    #: Human-readable description of the native layout, printed in errors and by ``bench data check``.
    layout: ClassVar[str] = ""
    source: ClassVar[str] = "real"

    def __init__(self, root: Path | str | None, skip: Iterable[str] = ()) -> None:
        self.root = Path(root) if root is not None else None
        self.skip = frozenset(skip)

    def options(self) -> dict[str, Any]:
        """Options that change the data (recorded with every result, part of the cache key)."""
        return {}

    def list_cases(self) -> list[Case]:
        raise NotImplementedError

    def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def cases(self) -> list[Case]:
        """The cases, sorted by ``case_id``, minus explicitly skipped ids."""
        return sorted((c for c in self.list_cases() if c.case_id not in self.skip), key=lambda c: c.case_id)
