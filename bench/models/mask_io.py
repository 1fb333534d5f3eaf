"""Input images for ``bench predict`` and predicted masks written in the dataset's own mask format.

Inputs: every image file under a folder (recursively; .png .jpg .jpeg .bmp .tif .tiff), minus the files
that are masks by the dataset's naming (its class's ``is_mask_file``: ``mask_stem`` and ``mask_folders``).
A multi-page TIFF is one input per page (a stack of slices).

Outputs go under the output folder at the path the dataset's class gives for the input's relative path
(``prediction_path``), written as the dataset stores its masks (``write_prediction``; foreground = the
class the dataset's reader reads as True). The pages of one TIFF stack go to one multi-page TIFF. The
formats per dataset are listed in its file under ``datasets/`` (and in README, ``bench predict``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datasets import dataset_info
from bench.datasets.decode import as_image, load_pixels, tiff_page_count
from bench.datasets.layout import natural_key
from bench.datasets.problems import ReadFailure
from bench.errors import InvalidInput, MissingInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class InputImage:
    """One image to predict: ``rel`` is the file's path relative to the input folder."""

    path: Path
    rel: Path
    page: int | None = None

    @property
    def image_id(self) -> str:
        base = self.rel.with_suffix("").as_posix()
        return base if self.page is None else f"{base}#{self.page}"


def find_images(folder: Path, dataset: str) -> list[InputImage]:
    """The images under ``folder`` (natural path order), minus ``dataset``'s mask files; raises
    ``MissingInput`` when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"--images {folder}: not a folder")
    is_mask = dataset_info(dataset).is_mask_file
    files = sorted(
        (
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: natural_key(p.relative_to(folder).as_posix()),
    )
    out = []
    for path in files:
        rel = path.relative_to(folder)
        if is_mask(rel):
            continue
        pages = tiff_page_count(path) if path.suffix.lower() in (".tif", ".tiff") else 1
        out += [InputImage(path, rel, page if pages > 1 else None) for page in range(pages)]
    if not out:
        raise MissingInput(
            f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) that are not {dataset} masks"
        )
    return out


def read_input(item: InputImage, channels: int) -> np.ndarray:
    """H x W x ``channels`` uint8, decoded like the dataset readers decode (alpha dropped, grey <-> RGB)."""
    origin = str(item.path) if item.page is None else f"{item.path} (page {item.page})"
    try:
        return as_image(load_pixels(item.path, item.page, "image"), channels, origin)
    except ReadFailure as fail:
        raise InvalidInput(f"cannot predict {fail}") from fail


def write_masks(out: Path, dataset: str, items: Sequence[InputImage], masks: Sequence[np.ndarray]) -> list[Path]:
    """Write each H x W bool mask of ``items`` under ``out`` in ``dataset``'s format; returns the files."""
    cls = dataset_info(dataset)
    written: dict[Path, None] = {}
    stacks: dict[Path, list[np.ndarray]] = {}
    for item, mask in zip(items, masks, strict=True):
        if item.page is not None:  # pages of one stack go to one multi-page TIFF, in page order
            stacks.setdefault(out / cls.prediction_path(item.rel, stack=True).with_suffix(".tif"), []).append(mask)
            continue
        written[cls.write_prediction(out / cls.prediction_path(item.rel), mask)] = None
    for path, pages in stacks.items():
        written[cls.write_prediction(path, np.stack(pages))] = None
    return list(written)
