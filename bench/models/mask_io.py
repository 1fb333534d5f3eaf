"""Input images for ``bench predict`` and predicted masks written in each dataset's own mask format.

Inputs: every image file under a folder (recursively; .png .jpg .jpeg .bmp .tif .tiff), minus files
that are masks by the native layouts' conventions (names ending ``_mask``, ``_segmentation``,
``_anno``, containing ``labels``, or files inside a ``masks``/``label``/``labels`` folder). A
multi-page TIFF is one input per page (ISBI-2012's ``test-volume.tif``).

Outputs mirror the input's relative path under the output folder, in the dataset's mask format
(foreground = the class the dataset's reader reads as True):

=============  =====================================================================================
isic2018       ``<stem>_segmentation.png``, 8-bit {0, 255}
isbi2012       PNG slice: ``<name>.png`` {0, 255} (255 = cell interior); a TIFF stack: one multi-page
               ``<stem with volume -> labels>.tif`` ({0, 255}, one page per input page)
lgg_mri        ``<stem>_mask.tif``, 8-bit {0, 255}
glas2015       ``<stem>_anno.bmp``: instance labels (connected components numbered 1..n, 0 = background;
               16-bit ``_anno.png`` when there are more than 255)
dsb2018        ``<id>/masks/<id>.png`` for ``<id>/images/<id>.png``: one {0, 255} PNG (the union of the
               nuclei, which the reader takes anyway)
other          ``<stem>_mask.png``, 8-bit {0, 255}
=============  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.datasets.decode import as_image, load_pixels, tiff_page_count
from bench.datasets.layout import natural_key
from bench.datasets.problems import ReadFailure
from bench.errors import InvalidInput, MissingInput

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_MASK_STEMS = ("_mask", "_segmentation", "_anno")
_MASK_FOLDERS = ("masks", "label", "labels")


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


def is_mask_file(rel: Path) -> bool:
    stem = rel.stem.lower()
    return (
        stem.endswith(_MASK_STEMS) or "labels" in stem or any(part.lower() in _MASK_FOLDERS for part in rel.parts[:-1])
    )


def find_images(folder: Path) -> list[InputImage]:
    """The images under ``folder`` (natural path order); raises FileNotFoundError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"--images {folder}: not a folder")
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
        if is_mask_file(rel):
            continue
        pages = tiff_page_count(path) if path.suffix.lower() in (".tif", ".tiff") else 1
        out += [InputImage(path, rel, page if pages > 1 else None) for page in range(pages)]
    if not out:
        raise MissingInput(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) that are not masks")
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
    written: dict[Path, None] = {}
    stacks: dict[Path, list[np.ndarray]] = {}
    for item, mask in zip(items, masks, strict=True):
        if item.page is not None:  # pages of one stack go to one multi-page TIFF, in page order
            stacks.setdefault(_stack_path(out, item), []).append(mask)
            continue
        written[_write_one(out, dataset, item, mask)] = None
    for path, pages in stacks.items():
        import tifffile

        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, np.stack([_u8(m) for m in pages]), photometric="minisblack")
        written[path] = None
    return list(written)


def _u8(mask: np.ndarray) -> np.ndarray:
    return mask.astype(np.uint8) * np.uint8(255)


def _stack_path(out: Path, item: InputImage) -> Path:
    stem = item.rel.stem
    name = stem.replace("volume", "labels") if "volume" in stem else f"{stem}-labels"
    return out / item.rel.parent / f"{name}.tif"


def _write_one(out: Path, dataset: str, item: InputImage, mask: np.ndarray) -> Path:
    from PIL import Image

    rel, stem = item.rel, item.rel.stem
    if dataset == "dsb2018":
        folder = rel.parent.parent if rel.parent.name == "images" else rel.parent / stem
        path = out / folder / "masks" / f"{stem}.png"
    elif dataset == "isic2018":
        path = out / rel.parent / f"{stem}_segmentation.png"
    elif dataset == "isbi2012":
        path = out / rel.parent / f"{stem}.png"
    elif dataset == "lgg_mri":
        path = out / rel.parent / f"{stem}_mask.tif"
    elif dataset == "glas2015":
        return _write_instances(out / rel.parent, stem, mask)
    else:
        path = out / rel.parent / f"{stem}_mask.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        import tifffile

        tifffile.imwrite(path, _u8(mask), photometric="minisblack")
    else:
        Image.fromarray(_u8(mask)).save(path)
    return path


def _write_instances(folder: Path, stem: str, mask: np.ndarray) -> Path:
    """GlaS annotation: connected components (8-connected) labelled 1..n, background 0."""
    from PIL import Image
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    folder.mkdir(parents=True, exist_ok=True)
    if n <= 255:
        path = folder / f"{stem}_anno.bmp"
        Image.fromarray(labels.astype(np.uint8)).save(path)
    else:
        path = folder / f"{stem}_anno.png"
        Image.fromarray(labels.astype(np.uint16)).save(path)
    return path
