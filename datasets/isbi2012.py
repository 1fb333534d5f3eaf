"""ISBI-2012 EM segmentation challenge (30 labelled 512x512 slices), as TIFF stacks or PNG slices."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.datasets import register_dataset
from bench.datasets.base import Case, DatasetOption, Fixture, NativeDataset, PaperFacts, ReadFailure, Scan
from bench.datasets.decode import tiff_page_count
from bench.datasets.fixtures import blob, grey, write
from bench.datasets.layout import image_files, index_by_id, pair_files

VOLUME = "train-volume.tif"
LABELS = "train-labels.tif"
PNG_IMAGES = Path("train") / "image"
PNG_LABELS = Path("train") / "label"
VARIANTS = ("auto", "tiff", "png")
_SLICE_RE = re.compile(r"^(\d+)\.png$", re.IGNORECASE)


def slice_id(index: int) -> str:
    """Stable case id of slice ``index`` (0-based), the same in both variants: ``slice_07``."""
    return f"slice_{index:02d}"


def _png_slice_id(path: Path) -> str | None:
    match = _SLICE_RE.match(path.name)
    return slice_id(int(match.group(1))) if match else None


@register_dataset("isbi2012")
class ISBI2012(NativeDataset):
    """Serial-section TEM of the Drosophila larva ventral nerve cord: grey images, 1 channel.

    Labels: 255 (white) = cell interior, 0 (black) = membrane; white covers about 78% of the pixels.
    **Foreground (mask True) = the white cell-interior class**, the paper's ROI ("the ROI covers the
    majority of the images"); membrane is background.

    Two native variants, the same 30 slices with the same case ids ``slice_00`` .. ``slice_29``
    (slice number = stack page = the PNG's number, sorted numerically):

    - ``variant="tiff"``: the official multi-page stacks ``train-volume.tif`` + ``train-labels.tif``
      (``Case.page`` is the page index);
    - ``variant="png"``: PNG slices ``train/image/N.png`` + ``train/label/N.png`` (N = 0..29);
    - ``variant="auto"`` (default): the stacks when ``train-volume.tif`` or ``train-labels.tif`` exists,
      else the PNG slices. ``options()`` records the variant actually used, and ``bench data check`` notes
      PNG slices that were present but not used.

    Each slice is its own group; the paper trains on 256x256 patches of it (``patch_based``).
    """

    name = "isbi2012"
    display_name = "ISBI-2012"
    modality = "electron microscopy"
    unit_nouns = ("source images", "patches")
    channels = 1
    paper = PaperFacts(
        "ISBI-2012", "Electron microscopy", 30, (512, 512), "patch", (16, 16, 16, 16, 20), 36, patches_per_image=4
    )
    patch_based = True
    layout = (
        f"{VOLUME} + {LABELS}   (multi-page TIFF stacks, one page per slice), or\n"
        f"{PNG_IMAGES}/N.png + {PNG_LABELS}/N.png   (N = 0, 1, ...; labels 255 = cell interior, 0 = membrane)"
    )
    mask_stem = r".*labels.*"  # train-labels.tif, test-labels.tif
    mask_folders = (PNG_LABELS.name, "labels")
    fixture_variants: ClassVar[dict[str, dict[str, Any]]] = {"tiff": {"variant": "tiff"}}
    OPTIONS = (
        DatasetOption(
            "variant",
            "auto",
            VARIANTS,
            "which copy of the slices to read: the TIFF stacks, the PNG slices, or auto (the stacks when present)",
        ),
    )

    @classmethod
    def prediction_path(cls, image: Path, stack: bool = False) -> Path:
        """A PNG slice: ``<name>.png``, {0, 255} (255 = cell interior), like ``train/label/N.png``. A TIFF
        stack: one multi-page ``<stem with volume -> labels>.tif`` (``test-volume.tif`` -> ``test-labels.tif``)."""
        if not stack:
            return image.with_name(f"{image.stem}.png")
        stem = image.stem
        return image.with_name(f"{stem.replace('volume', 'labels') if 'volume' in stem else stem + '-labels'}.tif")

    @property
    def variant(self) -> str:
        return str(self.option("variant"))

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return (folder / VOLUME).is_file() or (folder / PNG_IMAGES).is_dir()

    def resolved_variant(self) -> str | None:
        """ "tiff" or "png" as ``variant`` resolves on this folder; None when neither layout is present."""
        if self.variant != "auto":
            return self.variant
        if (self.root / VOLUME).is_file() or (self.root / LABELS).is_file():
            return "tiff"
        if (self.root / "train").is_dir():
            return "png"
        return None

    def options(self) -> dict[str, Any]:
        return {"variant": self.resolved_variant() or self.variant}

    def _scan(self) -> Scan:
        variant = self.resolved_variant()
        scan = Scan(counts={"variant": variant})
        if variant == "tiff":
            self._scan_tiff(scan)
            if self.variant == "auto" and (self.root / PNG_IMAGES).is_dir():
                scan.counts["note"] = f"PNG slices in {PNG_IMAGES} not used (the TIFF stacks were found first)"
        elif variant == "png":
            self._scan_png(scan)
        else:
            scan.add(
                self.root, "missing_folder", f"found neither {VOLUME} + {LABELS} nor {PNG_IMAGES}/ + {PNG_LABELS}/"
            )
        return scan

    def _pages(self, path: Path, scan: Scan) -> int | None:
        if not path.is_file():
            scan.add(path, "missing_file", "expected this TIFF stack")
            return None
        try:
            return tiff_page_count(path)
        except ReadFailure as fail:
            scan.problems.append(fail.problem(None))
            return None

    def _scan_tiff(self, scan: Scan) -> None:
        volume, labels = self.root / VOLUME, self.root / LABELS
        n_images, n_labels = self._pages(volume, scan), self._pages(labels, scan)
        if n_images is None or n_labels is None:
            return
        scan.counts.update(image_pages=n_images, label_pages=n_labels)
        for index in range(max(n_images, n_labels)):
            cid = slice_id(index)
            if index >= n_labels:
                scan.add(f"{volume} (page {index})", "missing_mask", f"{LABELS} has only {n_labels} pages", cid)
            elif index >= n_images:
                scan.add(f"{labels} (page {index})", "missing_image", f"{VOLUME} has only {n_images} pages", cid)
            else:
                scan.cases.append(Case(cid, cid, volume, (labels,), page=index))

    def _scan_png(self, scan: Scan) -> None:
        images = image_files(self.root / PNG_IMAGES, scan, {".png"}, "image slices")
        labels = image_files(self.root / PNG_LABELS, scan, {".png"}, "label slices")
        if images is None or labels is None:
            return
        by_image = index_by_id(images, _png_slice_id, scan, "slice (N.png)")
        by_label = index_by_id(labels, _png_slice_id, scan, "label (N.png)")
        for cid, image, mask_files in pair_files(by_image, by_label, scan):
            scan.cases.append(Case(cid, cid, image, mask_files))
        scan.counts.update(images=len(images), masks=len(labels))

    @classmethod
    def make_fixture(cls, root: Path, variant: str = "png", n: int = 4) -> Fixture:
        """``n`` slices as PNG files (``variant="png"``) or as the two TIFF stacks (``"tiff"``); the same
        pixels and case ids either way. Label 255 = cell interior (the majority)."""
        out = Fixture(root)
        pairs = [(grey(i), 255 - blob(i)) for i in range(n)]
        if variant == "tiff":
            volume = write(root / VOLUME, np.stack([p[0] for p in pairs]), stack=True)
            labels = write(root / LABELS, np.stack([p[1] for p in pairs]), stack=True)
            for i, (_, label) in enumerate(pairs):
                out.add(slice_id(i), volume, (labels,), label)
            return out
        for i, (image, label) in enumerate(pairs):
            label_file = write(root / PNG_LABELS / f"{i}.png", label)
            image_file = write(root / PNG_IMAGES / f"{i}.png", image)
            out.add(slice_id(i), image_file, (label_file,), label, duplicate=image_file.with_name(f"0{i}.png"))
        return out
