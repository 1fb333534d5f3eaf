"""What walking a native layout finds (``Case`` records in a ``Scan``, with problems and counts) and the
helpers readers walk their layouts with: natural sort, visible entries, image files of a folder,
file-to-case-id indexing (one file per id, or several: the masks of one case) and image/mask pairing.

Files whose names start with "." (``.DS_Store``, macOS ``._x.png`` forks) and files that are not images
(README, csv, txt) are ignored where a layout holds images, and counted under ``ignored_files``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.datasets.decode import IMAGE_SUFFIXES, where
from bench.datasets.problems import CaseProblem, Problem, case_of


@dataclass(frozen=True)
class Case:
    """One image of a dataset.

    ``case_id`` is stable across runs and machines (derived from file names, never from order);
    ``group`` is the unit that must not cross a split boundary (LGG: patient folder; otherwise the
    case itself). ``mask_paths`` holds one file, or several read as their union (one per nucleus in
    DSB-2018, one per lesion part where a layout splits a lesion over ``x_mask.png``, ``x_mask_1.png``).
    ``page`` indexes a multi-page TIFF stack (ISBI-2012), else None.
    """

    case_id: str
    group: str
    image_path: Path | None = None
    mask_paths: tuple[Path, ...] = ()
    page: int | None = None
    meta: tuple[tuple[str, str], ...] = ()


@dataclass
class Scan:
    """What walking a layout found: cases, problems and counts (``excluded`` = ids left out by an option)."""

    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    excluded: set[str] = field(default_factory=set)

    def add(self, path: Path | str, kind: str, detail: str, case_id: str | None = None) -> None:
        self.problems.append(CaseProblem(str(path), kind, detail, case_id))

    def ignore(self, path: Path) -> None:
        names = self.counts.setdefault("ignored_files", [])
        names.append(str(path))


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs numerically (``slice_2`` before ``slice_10``)."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text)))


def visible_entries(folder: Path) -> list[Path]:
    """Entries of ``folder`` not starting with ".", in natural name order (ties broken by the name)."""
    return sorted(
        (p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: (natural_key(p.name), p.name)
    )


def image_files(folder: Path, scan: Scan, allowed: Iterable[str], what: str) -> list[Path] | None:
    """Image files of ``folder`` with an ``allowed`` suffix. A missing folder, an empty one, or an image
    of another type is a problem; hidden and non-image files are counted as ignored. None if missing."""
    if not folder.is_dir():
        scan.add(folder, "missing_folder", f"expected the folder of {what}")
        return None
    allowed = {s.lower() for s in allowed}
    found = []
    for path in visible_entries(folder):
        suffix = path.suffix.lower()
        if path.is_file() and suffix in allowed:
            found.append(path)
        elif path.is_file() and suffix in IMAGE_SUFFIXES:
            scan.add(path, "unexpected_file", f"{what} must be {'/'.join(sorted(allowed))} files")
        else:
            scan.ignore(path)
    if not found:
        scan.add(folder, "empty_folder", f"no {what} ({'/'.join(sorted(allowed))}) in this folder")
    return found


def index_by_id(paths: Iterable[Path], case_id: Callable[[Path], str | None], scan: Scan, what: str) -> dict[str, Path]:
    """Map files to case ids. A name ``case_id`` rejects (None) is an unexpected file; two files with one
    id are a duplicate (the first is kept so the pairing can still be checked)."""
    out: dict[str, Path] = {}
    for path in paths:
        cid = case_id(path)
        if cid is None:
            scan.add(path, "unexpected_file", f"file name does not match the {what} naming of this layout")
        elif cid in out:
            scan.add(path, "duplicate_id", f"{what} {out[cid].name} and {path.name} both give case id {cid}", cid)
        else:
            out[cid] = path
    return out


def group_by_id(
    paths: Iterable[Path], case_id: Callable[[Path], str | None], scan: Scan, what: str
) -> dict[str, tuple[Path, ...]]:
    """Map files to case ids where one case may have several (the masks of one image: ``x_mask.png``,
    ``x_mask_1.png``), in the order of ``paths``. A name ``case_id`` rejects (None) is an unexpected file."""
    out: dict[str, tuple[Path, ...]] = {}
    for path in paths:
        cid = case_id(path)
        if cid is None:
            scan.add(path, "unexpected_file", f"file name does not match the {what} naming of this layout")
        else:
            out[cid] = (*out.get(cid, ()), path)
    return out


def pair_files(
    images: Mapping[str, Path], masks: Mapping[str, Path | tuple[Path, ...]], scan: Scan
) -> list[tuple[str, Path, tuple[Path, ...]]]:
    """(case_id, image, mask files) for ids with both; a case has one mask file (``index_by_id``) or
    several (``group_by_id``: read as their union). An image without mask or a mask without image is a
    problem of that case id."""
    by_id = {cid: (found,) if isinstance(found, Path) else tuple(found) for cid, found in masks.items()}
    for cid in sorted(set(images) - set(by_id), key=natural_key):
        scan.add(images[cid], "missing_mask", "image without mask", cid)
    for cid in sorted(set(by_id) - set(images), key=natural_key):
        scan.add(by_id[cid][0], "missing_image", "mask without image", cid)
    return [(cid, images[cid], by_id[cid]) for cid in sorted(set(images) & set(by_id), key=natural_key)]


def flag_duplicates(scan: Scan) -> None:
    """Add a ``duplicate_id`` problem for every case id that several cases share."""
    by_id: dict[str, list[Case]] = defaultdict(list)
    for case in scan.cases:
        by_id[case.case_id].append(case)
    for cid, cases in by_id.items():
        if len(cases) > 1:
            paths = ", ".join(where(c.image_path, c.page) for c in cases if c.image_path is not None)
            scan.add(cases[0].image_path or "", "duplicate_id", f"{len(cases)} cases share id {cid}: {paths}", cid)


def apply_skip(scan: Scan, skip: frozenset[str], root: Path) -> Scan:
    """Drop the ``skip`` ids' cases and problems; an id the layout does not hold is itself a problem."""
    if not skip:
        return scan
    known = {c.case_id for c in scan.cases} | {case_of(p) for p in scan.problems} | scan.excluded
    unknown = sorted(skip - known, key=natural_key)
    scan.cases = [c for c in scan.cases if c.case_id not in skip]
    scan.problems = [p for p in scan.problems if case_of(p) not in skip]
    scan.counts["skipped"] = sorted(skip & known, key=natural_key)
    if unknown:
        scan.add(root, "unknown_skip", f"skip lists case ids this layout does not hold: {', '.join(unknown)}")
    return scan
