"""The dataset contract: what a dataset file defines to be read, checked, tested and reported.

A dataset is one file in this package with one class registered by ``@register_dataset("name")``
(``bench.datasets``). A native-layout reader subclasses ``NativeDataset`` and defines:

- **facts** (class attributes): ``name``, ``display_name`` (the label tables use), ``modality``,
  ``channels`` (1 or 3), ``patch_based``, ``layout`` (the expected layout, printed in errors and by
  ``bench data check``), ``paper`` (the MILDNet paper's Table 1 / Table 2 numbers, ``PaperFacts``, or
  None for a dataset the paper did not use), ``typical_size`` (H, W of the synthetic stand-in; default:
  the paper's majority size, else 256 x 256); aliases go to ``register_dataset(..., aliases=(...))``;
- ``_scan()``: walk the layout (no pixel decoding) into ``Case`` records and the ``Problem``s seen;
- ``looks_like(folder)``: True when a folder holds this layout (how a data root's folders are found
  when their names are not the registry name or an alias);
- ``decode_mask(path, page)``: a mask file as H x W bool. The default applies ``mask_kind``: "binary"
  (the file must hold exactly {0, 255}) or "instance" (integer labels, foreground ``> 0``); a dataset
  with lossy masks (JPEG) overrides it in its own file, e.g. ``grey_levels(...) >= 128``;
- ``OPTIONS``: the ``DatasetOption``s that change its data (given as ``--dataset-option NAME.OPT=V``);
  the reader reads them with ``self.option("opt")``;
- ``make_fixture(root)``: write a tiny copy of the native layout (a few 40 x 32 images) and return a
  ``Fixture`` saying what must be read from it (``fixture_variants``: the other variants it can write).
  The native-layout tests run over every registered dataset and fail for one without it;
- mask naming, ``mask_stem`` / ``mask_folders`` (``is_mask_file``): how a mask file is told from an
  image by its path, so ``bench predict --images FOLDER`` skips masks (default: ``<stem>_mask.*`` and
  files in a ``masks/`` folder);
- ``prediction_path(image)`` and ``write_prediction(path, mask)``: the name and format of the mask
  ``bench predict`` writes for an input image (default: ``<stem>_mask.png`` beside it, {0, 255});
- ``group_patients(root)``: the patient of each group, read from the dataset folder, for the report's
  ``--unit patient`` (default: none).

Images are returned as H x W x C uint8 (C = ``channels``, alpha dropped), masks as H x W bool (True =
the foreground class the class docstring names). Resizing, normalisation, patching and caching happen
later (``bench.datasets.prepare``), identically for every dataset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.datasets.decode import as_image, as_mask, load_pixels, save_pixels, where
from bench.datasets.layout import Case, Scan, apply_skip, flag_duplicates, natural_key, visible_entries
from bench.datasets.options import DatasetOption, resolve_options
from bench.datasets.problems import CaseProblem, DataError, Problem, ReadFailure
from bench.errors import InvalidInput

__all__ = [
    "Case",
    "CaseProblem",
    "DataError",
    "DatasetOption",
    "Fixture",
    "NativeDataset",
    "PaperFacts",
    "Problem",
    "ReadFailure",
    "Scan",
    "SegDataset",
]


@dataclass(frozen=True)
class PaperFacts:
    """A dataset's numbers in the MILDNet paper (Gudhe et al., Sci Rep 11:14105, 2021), as printed.

    Table 1: ``name`` and ``modality`` (the paper's spelling), ``images``, ``majority_size`` (W x H).
    Table 2: ``unit`` ("image" or "patch"), the five fold sizes ``folds`` (fold model k validates on
    fold k) and the ``test`` set size. Methods: ``patches_per_image`` (256 x 256 patches, padding 16).
    """

    name: str
    modality: str
    images: int
    majority_size: tuple[int, int]
    unit: str
    folds: tuple[int, ...]
    test: int
    patches_per_image: int | None = None


@dataclass
class Fixture:
    """A tiny native layout written by ``make_fixture``: ``files[case_id] = (image, mask files)``, and per
    case id the H x W bool mask it must read as and its group.

    ``duplicates[case_id]``: another file name this layout reads as the same case id (``ISIC_1.png``
    beside ``ISIC_1.jpg``, ``01.png`` beside ``1.png``); the tests copy the image there and expect a
    ``duplicate_id`` problem. Left out where the layout cannot hold two images of one id (the id is a
    folder name)."""

    root: Path
    files: dict[str, tuple[Path, tuple[Path, ...]]] = field(default_factory=dict)
    masks_expected: dict[str, np.ndarray] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    duplicates: dict[str, Path] = field(default_factory=dict)

    def add(
        self,
        case_id: str,
        image: Path,
        masks: tuple[Path, ...],
        mask: np.ndarray,
        group: str | None = None,
        duplicate: Path | None = None,
    ) -> None:
        """Record one written case (``mask``: what it must read as, any array whose ``> 0`` is foreground;
        ``duplicate``: see ``duplicates``)."""
        self.files[case_id] = (image, masks)
        self.masks_expected[case_id] = np.asarray(mask) > 0
        self.groups[case_id] = case_id if group is None else group
        if duplicate is not None:
            self.duplicates[case_id] = duplicate

    def image(self, case_id: str) -> Path:
        return self.files[case_id][0]

    def mask(self, case_id: str) -> Path:
        return self.files[case_id][1][0]


class SegDataset:
    """Base of every dataset (native readers and the synthetic stand-ins): the facts as class attributes,
    ``list_cases`` (walk the layout, no pixel decoding) and ``read`` (decode one case)."""

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    #: (independent unit, scored image) nouns, plural, for captions and test outputs: ("patients", "slices")
    #: for LGG; the image noun alone where every image is its own group.
    unit_nouns: ClassVar[tuple[str, str]] = ("groups", "images")
    #: Where the layout records each group's patient (a file name, as ``group_patients`` reads it), for
    #: ``--unit patient``; "" where it records none.
    patient_record: ClassVar[str] = ""
    channels: ClassVar[int] = 3
    #: The paper's Table 1 / Table 2 numbers, or None for a dataset the paper did not use.
    paper: ClassVar[PaperFacts | None] = None
    #: ``paper.images`` (set from ``paper`` for every subclass).
    paper_count: ClassVar[int | None] = None
    #: True for ISBI-2012 and GlaS-2015, trained on 256x256 patches in the paper.
    patch_based: ClassVar[bool] = False
    #: (H, W) the synthetic stand-in mimics; None: the paper's majority size (else 256 x 256).
    typical_size: ClassVar[tuple[int, int] | None] = None
    #: Human-readable description of the native layout, printed in errors and by ``bench data check``.
    layout: ClassVar[str] = ""
    source: ClassVar[str] = "real"
    #: Options that change the data (``DatasetOption``); values passed as keyword arguments.
    OPTIONS: ClassVar[tuple[DatasetOption, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "paper" in cls.__dict__:
            cls.paper_count = cls.paper.images if cls.paper is not None else None

    def __init__(self, root: Path | str | None, skip: Iterable[str] = ()) -> None:
        self.root = Path(root) if root is not None else None
        self.skip = frozenset(skip)

    @classmethod
    def native_shape(cls) -> tuple[int, int]:
        """(H, W) of a typical image: ``typical_size``, else the paper's majority size, else 256 x 256."""
        if cls.typical_size is not None:
            return cls.typical_size
        return (cls.paper.majority_size[1], cls.paper.majority_size[0]) if cls.paper is not None else (256, 256)

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


class NativeDataset(SegDataset):
    """A dataset read from its native layout. Subclasses set the facts, ``_scan``, ``looks_like`` and
    ``make_fixture``, and may override ``decode_mask``, the mask naming, the predicted-mask writer and
    ``group_patients``, and declare ``OPTIONS`` (module docstring).

    Listing (``cases()``) raises ``DataError`` naming every layout problem (missing folder, image without
    mask, duplicate id, ...); reading a case (``read()``) raises ``DataError`` naming each bad file
    (unreadable/truncated, size mismatch, non-binary mask). Nothing is dropped silently: the only way to
    leave a case out is ``skip=[case ids]``, and a skip id the layout does not hold is itself a problem.
    A case with several ``mask_paths`` is the union of them (one file per instance).
    """

    #: The default ``decode_mask`` rule: "binary" (files hold {0, 255}) or "instance" (labels, ``> 0``).
    mask_kind: ClassVar[str] = "binary"
    #: Mask naming (``is_mask_file``): a regular expression a mask file's stem matches in full, any letter
    #: case (None: masks are told by their folder alone), and the folders whose files are masks.
    mask_stem: ClassVar[str | None] = r".+_mask"
    mask_folders: ClassVar[tuple[str, ...]] = ("masks",)
    #: Other native variants ``make_fixture`` writes: variant name -> its keyword arguments.
    fixture_variants: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, root: Path | str | None, skip: Iterable[str] = (), **options: Any) -> None:
        if root is None:
            raise InvalidInput(
                f"{self.name}: root is None; open_dataset({self.name!r}, None) gives the synthetic "
                "stand-in, a native reader needs the dataset's own folder"
            )
        if isinstance(skip, str):
            raise TypeError(f"{self.name}: skip must be a list of case ids, not the string {skip!r}")
        super().__init__(root, skip)
        self.root: Path = Path(root)
        self.option_values: dict[str, Any] = resolve_options(self.name, self.OPTIONS, options)

    def option(self, name: str) -> Any:
        """The value of declared option ``name``."""
        return self.option_values[name]

    def options(self) -> dict[str, Any]:
        return dict(self.option_values)

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        """True when ``folder`` holds this dataset's native layout (``bench.datasets.folders``)."""
        return False

    @classmethod
    def make_fixture(cls, root: Path) -> Fixture:
        """Write a tiny copy of the native layout under ``root`` and say what must be read from it."""
        raise NotImplementedError(
            f"{cls.name}: no make_fixture; every native dataset writes a tiny copy of its "
            "layout for the tests (datasets/base.py)"
        )

    @classmethod
    def is_mask_file(cls, path: Path) -> bool:
        """True when ``path`` (relative to a folder of this layout) names a mask, not an image, by the
        layout's naming: ``mask_stem`` and ``mask_folders``. ``bench predict --images`` skips such files."""
        stem_is_mask = cls.mask_stem is not None and re.fullmatch(cls.mask_stem, path.stem, re.IGNORECASE)
        folders = {name.lower() for name in cls.mask_folders}
        return bool(stem_is_mask) or any(part.lower() in folders for part in path.parts[:-1])

    @classmethod
    def prediction_path(cls, image: Path, stack: bool = False) -> Path:
        """Where ``bench predict`` writes the mask of input ``image`` (both relative: to the input and the
        output folder); the suffix is the format ``write_prediction`` gets. ``stack``: ``image`` is a
        multi-page TIFF whose masks go to one multi-page TIFF (its suffix becomes .tif). Default:
        ``<stem>_mask.png`` beside the image."""
        return image.with_name(f"{image.stem}_mask.png")

    @classmethod
    def write_prediction(cls, path: Path, mask: np.ndarray) -> Path:
        """Write a predicted mask (H x W bool, or pages x H x W for a TIFF stack) to ``path`` the way this
        dataset stores its masks; returns the file written. Default: 8-bit, 0 = background, 255 = the
        foreground class, in the format of ``path``'s suffix."""
        return save_pixels(path, mask.astype(np.uint8) * np.uint8(255), stack=mask.ndim == 3)

    @classmethod
    def group_patients(cls, root: Path) -> dict[str, str]:
        """{group: patient} read from the dataset folder ``root``, where a layout records the patient of
        each group (source image) in a file of its own; the report pairs patients on it (``--unit
        patient``). Default: none ({})."""
        return {}

    def _scan(self) -> Scan:
        raise NotImplementedError

    def decode_mask(self, path: Path, page: int | None = None) -> np.ndarray:
        """One stored mask file (or TIFF page) as H x W bool; raises ``ReadFailure`` naming the file.
        The default applies ``mask_kind``; override it for masks stored another way (lossy JPEG)."""
        return as_mask(load_pixels(path, page, "mask"), self.mask_kind == "binary", where(path, page))

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
        flag_duplicates(scan)
        return apply_skip(scan, self.skip, self.root)

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

    def _mask_part(
        self, path: Path, case: Case, image: np.ndarray | None, mask: np.ndarray | None, problems: list[Problem]
    ) -> np.ndarray | None:
        origin = where(path, case.page)
        try:
            part = self.decode_mask(path, case.page)
        except ReadFailure as fail:
            problems.append(fail.problem(case.case_id))
            return None
        expected = image.shape[:2] if image is not None else (mask.shape if mask is not None else part.shape)
        if part.shape != expected:
            problems.append(
                CaseProblem(
                    origin,
                    "size_mismatch",
                    f"mask is {wxh(part.shape)}, its image is {wxh(expected)} (W x H)",
                    case.case_id,
                )
            )
            return None
        return part

    def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        """(image H x W x C uint8, mask H x W bool); raises ``DataError`` naming each bad file."""
        image, mask, problems = self.inspect(case)
        if problems or image is None or mask is None:
            raise DataError(self.name, self.root, problems)
        return image, mask


def wxh(shape: tuple[int, ...]) -> str:
    """``"40x32"`` (W x H) of an array shape (H, W, ...)."""
    return f"{shape[1]}x{shape[0]}"
