"""DSB-2018 nuclei (Kaggle Data Science Bowl 2018, stage 1 training set), native per-image folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.datasets import register_dataset
from bench.datasets.base import Case, Fixture, NativeDataset, PaperFacts, Scan
from bench.datasets.decode import IMAGE_SUFFIXES
from bench.datasets.fixtures import H, W, grey, rgb, write
from bench.datasets.layout import visible_entries

BASE = "stage1_train"
#: Image ids of the fixture (``make_fixture``).
FIXTURE_IDS = ("0a1b2c", "3d4e5f", "6a7b8c")


@register_dataset("dsb2018")
class DSB2018(NativeDataset):
    """Nuclei images of many kinds (fluorescence, bright-field, H&E-like; 256x256 up to 1388x1040).

    Images are RGBA PNGs with constant alpha, most of them grey stored as RGB(A): alpha is dropped and all
    3 channels are kept (some images are colour). Each nucleus is one mask PNG ({0, 255}, names are
    hashes); **foreground = the union of all nucleus masks of an image**. Case id = the image id (the
    folder name); every image is its own group. A folder without ``masks/`` (or with an empty one) is a
    problem, not a background-only image.
    """

    name = "dsb2018"
    display_name = "DSB-2018"
    modality = "cell nuclei microscopy"
    channels = 3
    paper = PaperFacts("DSB-2018", "Cell nuclei microscopy", 670, (320, 256), "image", (94, 94, 94, 94, 93), 201)
    layout = (
        f"{BASE}/<id>/images/<id>.png   (RGBA, alpha dropped)\n"
        f"{BASE}/<id>/masks/<hash>.png   (one per nucleus, 0 or 255; the target is their union)"
    )

    mask_stem = None
    mask_folders = ("masks",)

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return (folder / BASE).is_dir()

    @classmethod
    def prediction_path(cls, image: Path, stack: bool = False) -> Path:
        """``<id>/masks/<id>.png`` for ``<id>/images/<id>.png`` (else ``<stem>/masks/<stem>.png`` beside the
        image): one {0, 255} PNG, the union of the nuclei, which the reader takes anyway."""
        folder = image.parent.parent if image.parent.name == "images" else image.parent / image.stem
        return folder / "masks" / f"{image.stem}.png"

    def _scan(self) -> Scan:
        scan = Scan()
        base = self.root / BASE
        if not base.is_dir():
            scan.add(base, "missing_folder", f"expected the Kaggle folder {BASE}/ (one folder per image) here")
            return scan
        folders = [p for p in visible_entries(base) if p.is_dir()]
        for path in visible_entries(base):
            if not path.is_dir():
                scan.ignore(path)
        if not folders:
            scan.add(base, "empty_folder", "no image folders")
        n_masks = [self._scan_folder(folder, scan) for folder in folders]
        scan.counts.update(image_folders=len(folders), nucleus_masks=sum(n_masks))
        if n_masks:
            scan.counts["masks_per_image (min-max)"] = f"{min(n_masks)}-{max(n_masks)}"
        return scan

    def _scan_folder(self, folder: Path, scan: Scan) -> int:
        cid = folder.name
        image = self._image(folder, scan)
        masks = self._masks(folder, scan)
        if image is not None and masks:
            scan.cases.append(Case(cid, cid, image, tuple(masks)))
        return len(masks)

    @staticmethod
    def _pngs(folder: Path, scan: Scan, what: str, cid: str) -> list[Path]:
        if not folder.is_dir():
            return []
        found = []
        for path in visible_entries(folder):
            if path.is_file() and path.suffix.lower() == ".png":
                found.append(path)
            elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                scan.add(path, "unexpected_file", f"{what} must be PNG files", cid)
            else:
                scan.ignore(path)
        return found

    def _image(self, folder: Path, scan: Scan) -> Path | None:
        cid = folder.name
        expected = folder / "images" / f"{cid}.png"
        pngs = self._pngs(folder / "images", scan, "images", cid)
        for extra in (p for p in pngs if p != expected):
            scan.add(extra, "unexpected_file", f"images/ must hold only {expected.name}", cid)
        if expected.is_file():
            return expected
        scan.add(expected, "missing_image", "image folder without its image <id>/images/<id>.png", cid)
        return None

    def _masks(self, folder: Path, scan: Scan) -> list[Path]:
        masks = self._pngs(folder / "masks", scan, "nucleus masks", folder.name)
        if not masks:
            scan.add(
                folder / "masks", "missing_mask", "image without nucleus masks (masks/ missing or empty)", folder.name
            )
        return masks

    @classmethod
    def make_fixture(cls, root: Path, nuclei: int = 3) -> Fixture:
        """Three image folders: RGBA PNG images (the first grey stored as RGBA, the others colour), one
        {0, 255} PNG per nucleus (hash-like names)."""
        out = Fixture(root)
        for i, cid in enumerate(FIXTURE_IDS):
            colour = rgb(i) if i else np.repeat(grey(i)[..., None], 3, axis=2)
            rgba = np.concatenate([colour, np.full((H, W, 1), 255, np.uint8)], axis=2)
            image = write(root / BASE / cid / "images" / f"{cid}.png", rgba)
            masks, union = [], np.zeros((H, W), bool)
            for k in range(nuclei):
                nucleus = np.zeros((H, W), np.uint8)
                nucleus[4 + 8 * k : 9 + 8 * k, 3 + 10 * i : 9 + 10 * i] = 255
                name = hashlib.sha1(f"{cid}{k}".encode()).hexdigest()[:16]
                masks.append(write(root / BASE / cid / "masks" / f"{name}.png", nucleus))
                union |= nucleus > 0
            out.add(cid, image, tuple(masks), union)
        return out
