"""Kvasir-SEG (Jha et al., MMM 2020): colonoscopy frames with polyp masks, as released (JPEG masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.datasets import register_dataset
from bench.datasets.base import Case, Fixture, NativeDataset, Scan
from bench.datasets.decode import grey_levels, load_pixels, where
from bench.datasets.fixtures import blob, rgb, write
from bench.datasets.layout import image_files, index_by_id, pair_files

IMAGES, MASKS = "images", "masks"
SUFFIXES = {".jpg", ".jpeg", ".png"}
#: Grey level (0..255) from which a mask pixel is polyp: the midpoint of the stored 0 and 255.
THRESHOLD = 128
#: Image ids of the fixture (``make_fixture``), in the release's naming.
FIXTURE_IDS = ("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4", "cju0roawvklrq0799vmjorwfv")


@register_dataset("kvasir_seg", aliases=("kvasir-seg", "kvasir"))
class KvasirSEG(NativeDataset):
    """Colonoscopy frames (RGB JPEG, 332x487 to 1920x1072) with one polyp mask each (1000 images).

    **Foreground = polyp.** The masks ship as JPEG: compression leaves grey values around every 0/255
    edge and R, G, B slightly apart, so the strict {0, 255} check would refuse every file and ``> 0``
    would count the noise as polyp. ``decode_mask`` averages the channels and keeps grey level >= 128.
    Case id = the file stem (shared by image and mask); every image is its own group (the release names
    no patients). Not one of the paper's datasets: ``bench run --all`` leaves it out, ``--dataset
    kvasir_seg`` runs it.
    """

    name = "kvasir_seg"
    display_name = "Kvasir-SEG"
    modality = "colonoscopy"
    channels = 3
    typical_size = (576, 720)  # (H, W) of the synthetic stand-in: within the release's range, not a measured majority
    layout = (
        f"{IMAGES}/<id>.jpg   (RGB colonoscopy frame)\n"
        f"{MASKS}/<id>.jpg   (polyp mask, JPEG: grey level >= {THRESHOLD} = polyp)"
    )

    mask_stem = None  # a mask has its image's stem: it is told by its folder
    mask_folders = (MASKS,)
    # predicted masks: the default <stem>_mask.png, lossless (not the release's JPEG)

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return (folder / IMAGES).is_dir() and (folder / MASKS).is_dir()

    def decode_mask(self, path: Path, page: int | None = None) -> np.ndarray:
        return grey_levels(load_pixels(path, page, "mask"), where(path, page)) >= THRESHOLD

    def _scan(self) -> Scan:
        scan = Scan()
        nested = self.root / "Kvasir-SEG"
        if not (self.root / IMAGES).is_dir() and (nested / IMAGES).is_dir():
            scan.add(
                self.root / IMAGES, "missing_folder", f"expected {IMAGES}/ here (found {nested}: point root at it)"
            )
            return scan
        images = image_files(self.root / IMAGES, scan, SUFFIXES, "colonoscopy images")
        masks = image_files(self.root / MASKS, scan, SUFFIXES, "polyp masks")
        if images is None or masks is None:
            return scan
        by_image = index_by_id(images, lambda p: p.stem, scan, "image")
        by_mask = index_by_id(masks, lambda p: p.stem, scan, "mask (<image id>.jpg)")
        for cid, image, mask_files in pair_files(by_image, by_mask, scan):
            scan.cases.append(Case(cid, cid, image, mask_files))
        scan.counts.update(images=len(images), masks=len(masks))
        return scan

    @classmethod
    def make_fixture(cls, root: Path) -> Fixture:
        """Three JPEG frames with JPEG masks (quality 75: the masks hold compression noise)."""
        out = Fixture(root)
        for i, cid in enumerate(FIXTURE_IDS):
            image, mask = write(root / IMAGES / f"{cid}.jpg", rgb(i)), blob(i)
            stored = write(root / MASKS / f"{cid}.jpg", np.repeat(mask[..., None], 3, axis=2), quality=75)
            out.add(cid, image, (stored,), mask, duplicate=image.with_suffix(".png"))
        return out
