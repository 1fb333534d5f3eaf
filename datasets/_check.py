"""Validation of native dataset layouts, and the machinery the five native readers share.

``NativeDataset`` is the base of the readers: a subclass only walks its layout (``_scan``, no pixel
decoding) into ``Case`` records plus the ``Problem``s it saw; decoding, channel handling, mask checks,
``skip=`` and ``DataError`` are shared here, so every dataset reports bad files the same way:

- listing (``cases()``) raises ``DataError`` naming every layout problem (missing folder, image without
  mask, duplicate id, ...); reading a case (``read()``) raises ``DataError`` naming each bad file
  (unreadable/truncated, size mismatch, non-binary mask). Nothing is dropped silently: the only way to
  leave a case out is ``skip=[case ids]``, and a skip id the layout does not hold is itself a problem.
- ``check_dataset`` collects all of these for every case instead of stopping at the first;
  ``check_data_root`` finds the dataset folders under a data root; ``format_report`` prints one.

Files whose names start with "." (``.DS_Store``, macOS ``._x.png`` forks) and files that are not images
(README, csv, txt) are ignored where a layout holds images, and counted under ``ignored_files``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.datasets._base import Case, CheckReport, DataError, Problem, SegDataset

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})


@dataclass(frozen=True)
class CaseProblem(Problem):
    """A problem that belongs to one case id, so ``skip=[case_id]`` can exclude it explicitly."""

    case_id: str | None = None

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} [case {self.case_id}]" if self.case_id else text


def case_of(problem: Problem) -> str | None:
    return problem.case_id if isinstance(problem, CaseProblem) else None


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


class ReadFailure(Exception):
    """A file that could not be turned into pixels; becomes a ``CaseProblem``."""

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {path}: {detail}")
        self.path, self.kind, self.detail = path, kind, detail

    def problem(self, case_id: str | None) -> CaseProblem:
        return CaseProblem(self.path, self.kind, self.detail, case_id)


# ---------------------------------------------------------------- decoding
def where(path: Path, page: int | None) -> str:
    return str(path) if page is None else f"{path} (page {page})"


def load_pixels(path: Path, page: int | None = None, role: str = "image") -> np.ndarray:
    """Decode one file (or one page of a multi-page TIFF) to a numpy array, as stored.

    TIFF goes through tifffile, everything else through Pillow. ``role="mask"`` keeps palette indices
    (instance labels); ``role="image"`` converts palette and non-RGB colour modes to RGB. Any decoder
    error becomes ``ReadFailure`` naming the file.
    """
    if not path.is_file():
        raise ReadFailure(str(path), "missing_file", "file not found")
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            return _load_tiff(path, page)
        return _load_pil(path, page, role)
    except ReadFailure:
        raise
    except Exception as exc:  # any decoder error (OSError, ValueError, SyntaxError, struct.error, ...)
        raise ReadFailure(where(path, page), "unreadable", f"cannot decode: {type(exc).__name__}: {exc}") from exc


def _load_tiff(path: Path, page: int | None) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        n = len(tif.pages)
        if page is None and n != 1:
            raise ReadFailure(str(path), "multi_page", f"expected a single-page TIFF, found {n} pages")
        if page is not None and page >= n:
            raise ReadFailure(where(path, page), "missing_page", f"the stack has only {n} pages")
        return np.asarray(tif.pages[page or 0].asarray())


def _load_pil(path: Path, page: int | None, role: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        if page is not None:
            img.seek(page)
        img.load()
        if img.mode == "1":
            return np.array(img, dtype=np.uint8) * np.uint8(255)
        if img.mode in ("CMYK", "YCbCr", "LAB", "HSV") or (img.mode in ("P", "PA") and role == "image"):
            img = img.convert("RGBA" if "transparency" in img.info or img.mode == "PA" else "RGB")
        return np.array(img)


def tiff_page_count(path: Path) -> int:
    """Pages in a TIFF stack; raises ``ReadFailure`` when the file cannot be parsed."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return len(tif.pages)
    except Exception as exc:
        raise ReadFailure(str(path), "unreadable", f"cannot parse TIFF: {type(exc).__name__}: {exc}") from exc


def _drop_alpha(arr: np.ndarray) -> np.ndarray:
    return arr[..., : arr.shape[2] - 1] if arr.ndim == 3 and arr.shape[2] in (2, 4) else arr


def _channels_equal(arr: np.ndarray) -> bool:
    return all(np.array_equal(arr[..., 0], arr[..., k]) for k in range(1, arr.shape[2]))


def as_image(arr: np.ndarray, channels: int, origin: str) -> np.ndarray:
    """H x W x ``channels`` uint8: alpha dropped, grey repeated to RGB, RGB with equal channels to grey."""
    if arr.dtype != np.uint8:
        raise ReadFailure(origin, "bad_dtype", f"expected 8-bit pixels, found {arr.dtype}")
    arr = _drop_alpha(arr[..., None] if arr.ndim == 2 else arr)
    if arr.ndim != 3:
        raise ReadFailure(origin, "bad_channels", f"expected a 2D image, found array shape {arr.shape}")
    k = arr.shape[2]
    if k == channels:
        return np.ascontiguousarray(arr)
    if k == 1 and channels == 3:
        return np.repeat(arr, 3, axis=2)
    if k == 3 and channels == 1 and _channels_equal(arr):
        return np.ascontiguousarray(arr[..., :1])
    raise ReadFailure(origin, "bad_channels", f"expected {channels} channel(s) (grey stored as RGB is fine), "
                                              f"found {k} channels that differ")


def as_mask(arr: np.ndarray, binary: bool, origin: str) -> np.ndarray:
    """H x W bool foreground from a stored mask: ``> 0``. A ``binary`` mask must hold only {0, 255}
    (a bool / 1-bit mask is fine); an instance-label mask may hold any non-negative integers."""
    if arr.ndim == 3:
        arr = _drop_alpha(arr)
        if not _channels_equal(arr):
            raise ReadFailure(origin, "bad_channels", f"mask has {arr.shape[2]} channels that differ; "
                                                      "expected one channel (or equal R=G=B)")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ReadFailure(origin, "bad_channels", f"expected a 2D mask, found array shape {arr.shape}")
    if arr.dtype == bool:
        return arr.copy()
    if not np.issubdtype(arr.dtype, np.integer):
        raise ReadFailure(origin, "bad_dtype", f"expected integer mask values, found {arr.dtype}")
    if binary:
        _require_binary(arr, origin)
    return arr > 0


def _require_binary(arr: np.ndarray, origin: str) -> None:
    if arr.dtype == np.uint8 and not np.any((arr - np.uint8(1)) < 254):  # fast path: 1..254 absent
        return
    uniq, cnt = np.unique(arr, return_counts=True)
    values = {int(v): int(c) for v, c in zip(uniq, cnt)}
    if set(values) - {0, 255}:
        shown = ", ".join(f"{v} ({n} px)" for v, n in list(values.items())[:8])
        more = f", ... ({len(values)} distinct values)" if len(values) > 8 else ""
        raise ReadFailure(origin, "non_binary_mask", f"expected values {{0, 255}}, found {shown}{more}")


# ---------------------------------------------------------------- layout helpers
def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders digit runs numerically (``slice_2`` before ``slice_10``)."""
    return tuple(int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", text)))


def visible_entries(folder: Path) -> list[Path]:
    """Entries of ``folder`` not starting with ".", in natural name order (ties broken by the name)."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")),
                  key=lambda p: (natural_key(p.name), p.name))


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


def index_by_id(paths: Iterable[Path], case_id: Callable[[Path], str | None], scan: Scan, what: str
                ) -> dict[str, Path]:
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


def pair_files(images: dict[str, Path], masks: dict[str, Path], scan: Scan) -> list[tuple[str, Path, Path]]:
    """(case_id, image, mask) for ids with both files; an image without mask or a mask without image
    is a problem of that case id."""
    for cid in sorted(set(images) - set(masks), key=natural_key):
        scan.add(images[cid], "missing_mask", "image without mask", cid)
    for cid in sorted(set(masks) - set(images), key=natural_key):
        scan.add(masks[cid], "missing_image", "mask without image", cid)
    return [(cid, images[cid], masks[cid]) for cid in sorted(set(images) & set(masks), key=natural_key)]


def _flag_duplicates(scan: Scan) -> None:
    by_id: dict[str, list[Case]] = defaultdict(list)
    for case in scan.cases:
        by_id[case.case_id].append(case)
    for cid, cases in by_id.items():
        if len(cases) > 1:
            paths = ", ".join(where(c.image_path, c.page) for c in cases if c.image_path is not None)
            scan.add(cases[0].image_path or "", "duplicate_id", f"{len(cases)} cases share id {cid}: {paths}", cid)


def _apply_skip(scan: Scan, skip: frozenset[str], root: Path) -> Scan:
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


# ---------------------------------------------------------------- the base class
class NativeDataset(SegDataset):
    """A dataset read from its native layout. Subclasses set the class attributes and ``_scan``.

    ``mask_kind`` is "binary" (mask files must hold {0, 255}) or "instance" (integer labels, foreground
    ``> 0``). A case with several ``mask_paths`` is the union of them (one file per instance).
    """

    mask_kind: ClassVar[str] = "binary"

    def __init__(self, root: Path | str | None, skip: Iterable[str] = ()) -> None:
        if root is None:
            raise ValueError(f"{self.name}: root is None; open_dataset({self.name!r}, None) gives the synthetic "
                             "stand-in, a native reader needs the dataset's own folder")
        if isinstance(skip, str):
            raise TypeError(f"{self.name}: skip must be a list of case ids, not the string {skip!r}")
        super().__init__(root, skip)
        self.root: Path = Path(root)

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        """True when ``folder`` holds this dataset's native layout (used by ``check_data_root``)."""
        return False

    def _scan(self) -> Scan:
        raise NotImplementedError

    def scan(self) -> Scan:
        """Walk the layout and report what is wrong, without raising; ``skip`` is applied."""
        if not self.root.is_dir():
            scan = Scan()
            scan.add(self.root, "missing_folder", f"the {self.name} folder does not exist")
        elif not visible_entries(self.root):
            scan = Scan()
            scan.add(self.root, "empty_folder", f"the {self.name} folder is empty")
        else:
            scan = self._scan()
        _flag_duplicates(scan)
        return _apply_skip(scan, self.skip, self.root)

    def list_cases(self) -> list[Case]:
        scan = self.scan()
        if scan.problems:
            raise DataError(self.name, self.root, scan.problems, self.layout)
        return scan.cases

    def cases(self) -> list[Case]:
        """The cases in natural ``case_id`` order (digit runs compare as numbers), minus ``skip``."""
        return sorted(self.list_cases(), key=lambda c: natural_key(c.case_id))

    def inspect(self, case: Case) -> tuple[np.ndarray | None, np.ndarray | None, list[Problem]]:
        """Decode and validate one case without raising: (image or None, mask or None, problems)."""
        problems: list[Problem] = []
        image = mask = None
        if case.image_path is None:
            problems.append(CaseProblem("", "missing_image", "case has no image file", case.case_id))
        else:
            try:
                origin = where(case.image_path, case.page)
                image = as_image(load_pixels(case.image_path, case.page, "image"), self.channels, origin)
            except ReadFailure as fail:
                problems.append(fail.problem(case.case_id))
        if not case.mask_paths:
            problems.append(CaseProblem(str(case.image_path), "missing_mask", "image without mask", case.case_id))
        for path in case.mask_paths:
            part = self._mask_part(path, case, image, mask, problems)
            if part is not None:
                mask = part if mask is None else (mask | part)
        return image, mask, problems

    def _mask_part(self, path: Path, case: Case, image: np.ndarray | None, mask: np.ndarray | None,
                   problems: list[Problem]) -> np.ndarray | None:
        origin = where(path, case.page)
        try:
            part = as_mask(load_pixels(path, case.page, "mask"), self.mask_kind == "binary", origin)
        except ReadFailure as fail:
            problems.append(fail.problem(case.case_id))
            return None
        expected = image.shape[:2] if image is not None else (mask.shape if mask is not None else part.shape)
        if part.shape != expected:
            problems.append(CaseProblem(origin, "size_mismatch", f"mask is {_wxh(part.shape)}, its image is "
                                                                 f"{_wxh(expected)} (W x H)", case.case_id))
            return None
        return part

    def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        """(image H x W x C uint8, mask H x W bool); raises ``DataError`` naming each bad file."""
        image, mask, problems = self.inspect(case)
        if problems or image is None or mask is None:
            raise DataError(self.name, self.root, problems)
        return image, mask


def _wxh(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"


# ---------------------------------------------------------------- checking
@dataclass
class _Stats:
    sizes: Counter[str] = field(default_factory=Counter)
    empty: int = 0
    fg_sum: float = 0.0
    n: int = 0

    def add(self, image: np.ndarray | None, mask: np.ndarray | None) -> None:
        if image is not None:
            self.sizes[_wxh(image.shape)] += 1
        if mask is not None:
            self.n += 1
            share = float(mask.mean())
            self.fg_sum += share
            self.empty += share == 0.0

    def counts(self) -> dict[str, Any]:
        return {"image_sizes (W x H)": dict(self.sizes.most_common()), "empty_masks": self.empty,
                "foreground_share_mean": round(self.fg_sum / self.n, 4) if self.n else None}


def _listed_cases(ds: SegDataset, report: CheckReport) -> list[Case]:
    if isinstance(ds, NativeDataset):
        scan = ds.scan()
        report.problems.extend(scan.problems)
        report.counts.update(scan.counts)
        return sorted(scan.cases, key=lambda c: natural_key(c.case_id))
    try:
        return ds.cases()
    except DataError as err:
        report.problems.extend(err.problems)
        return []


def _inspect(ds: SegDataset, case: Case) -> tuple[np.ndarray | None, np.ndarray | None, list[Problem]]:
    if isinstance(ds, NativeDataset):
        return ds.inspect(case)
    try:
        image, mask = ds.read(case)
        return image, mask, []
    except DataError as err:
        return None, None, list(err.problems)
    except Exception as exc:  # noqa: BLE001 - a reader without NativeDataset's wrapping: still name the case
        path = str(case.image_path or case.case_id)
        return None, None, [CaseProblem(path, "unreadable", f"{type(exc).__name__}: {exc}", case.case_id)]


def check_dataset(ds: SegDataset) -> CheckReport:
    """List the cases and read every one, collecting every problem (by file path) and summary counts."""
    report = CheckReport(ds.name, ds.root, ds.layout)
    cases = _listed_cases(ds, report)
    stats = _Stats()
    for case in cases:
        image, mask, problems = _inspect(ds, case)
        report.problems.extend(problems)
        stats.add(image, mask)
    report.n_cases = len(cases)
    report.n_groups = len({c.group for c in cases})
    report.counts.update(stats.counts())
    if ds.options():
        report.counts["options"] = ds.options()
    return report


def _native_classes() -> dict[str, type[NativeDataset]]:
    from bench.datasets import DATASETS, list_datasets

    out = {}
    for name in list_datasets():
        factory = DATASETS.get(name).factory
        if isinstance(factory, type) and issubclass(factory, NativeDataset):
            out[name] = factory
    return out


def identify_folder(folder: Path) -> str | None:
    """The dataset a folder holds: by name (a registry name or alias, any case), else by layout
    when exactly one reader recognises it; None otherwise."""
    from bench.datasets import DATASETS, canonical_name

    classes = _native_classes()
    name = folder.name.lower()
    if name in DATASETS and canonical_name(name) in classes:
        return canonical_name(name)
    matches = [n for n, cls in classes.items() if cls.looks_like(folder)]
    return matches[0] if len(matches) == 1 else None


def check_data_root(path: Path | str) -> list[CheckReport]:
    """Check every dataset folder directly under a data root (one native-layout folder per dataset).

    Returns one report per recognised folder, in folder-name order; an empty list when none is
    recognised. A missing data root gives one failing report.
    """
    from bench.datasets import create_dataset

    root = Path(path)
    if not root.is_dir():
        report = CheckReport("data_root", root, "a folder with one native-layout folder per dataset")
        report.problems.append(Problem(str(root), "missing_folder", "the data root does not exist"))
        return [report]
    reports = []
    for folder in visible_entries(root):
        name = identify_folder(folder) if folder.is_dir() else None
        if name is not None:
            reports.append(check_dataset(create_dataset(name, root=folder)))
    return reports


def _format_count(key: str, value: Any) -> str:
    if key == "options" and isinstance(value, dict):
        value = ", ".join(f"{k}={v!r}" for k, v in value.items())
    elif isinstance(value, dict):
        value = ", ".join(f"{k} ({v})" if isinstance(v, int) else f"{k}: {v}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        shown = [str(v) for v in value[:10]]
        value = f"{len(value)}: " + ", ".join(shown) + (", ..." if len(value) > 10 else "")
    return f"  {key}: {value}"


def _paper_count(name: str) -> int | None:
    from bench.datasets import DATASETS

    return getattr(DATASETS.get(name).factory, "paper_count", None) if name in DATASETS else None


def format_report(report: CheckReport) -> str:
    """Expected layout, counts found, every problem by path, and a verdict line."""
    lines = [f"== {report.dataset} at {report.root}", "expected layout:"]
    lines += [f"  {line}" for line in report.layout.strip().splitlines()]
    lines.append(f"found: {report.n_cases} cases in {report.n_groups} groups")
    lines += [_format_count(k, v) for k, v in report.counts.items()]
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  - {p}" for p in report.problems]
    paper = _paper_count(report.dataset)
    versus = f" (paper Table 1: {paper})" if paper else ""
    if report.ok:
        lines.append(f"verdict: OK, {report.n_cases} cases readable{versus}")
    else:
        files = len({p.path for p in report.problems})
        lines.append(f"verdict: FAIL, {len(report.problems)} problem(s) in {files} file(s)/folder(s); fix or "
                     "remove them, or exclude their case ids explicitly with skip=[...]")
    return "\n".join(lines)
