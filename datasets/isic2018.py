"""ISIC-2018 Task 1 (skin lesion boundary segmentation), read from the official training folders."""

from __future__ import annotations

from pathlib import Path

from bench.datasets import register_dataset
from bench.datasets.base import Case, Fixture, NativeDataset, PaperFacts, Scan
from bench.datasets.fixtures import blob, rgb, write
from bench.datasets.layout import image_files, index_by_id, pair_files

INPUT_DIR = "ISIC2018_Task1-2_Training_Input"
TRUTH_DIR = "ISIC2018_Task1_Training_GroundTruth"
MASK_SUFFIX = "_segmentation"


def _image_id(path: Path) -> str:
    return path.stem


def _mask_id(path: Path) -> str | None:
    stem = path.stem
    return stem[: -len(MASK_SUFFIX)] if stem.endswith(MASK_SUFFIX) and len(stem) > len(MASK_SUFFIX) else None


@register_dataset("isic2018")
class ISIC2018(NativeDataset):
    """Dermoscopy images (RGB JPEG, sizes vary from 1024x768 to 6000x4000) with lesion masks.

    Foreground = lesion (mask value 255); masks must hold exactly {0, 255} and match their image's size.
    Case id = the image file's stem (``ISIC_0012345``); every image is its own group.
    """

    name = "isic2018"
    display_name = "ISIC-2018"
    modality = "dermoscopy"
    channels = 3
    paper = PaperFacts("ISIC-2018", "Dermoscopy", 2594, (1022, 767), "image", (363, 363, 363, 363, 364), 778)
    layout = f"{INPUT_DIR}/ISIC_<id>.jpg\n{TRUTH_DIR}/ISIC_<id>{MASK_SUFFIX}.png   (8-bit grey, 0 = skin, 255 = lesion)"
    mask_stem = f".+{MASK_SUFFIX}"
    mask_folders = (TRUTH_DIR,)

    @classmethod
    def prediction_path(cls, image: Path, stack: bool = False) -> Path:
        """``<stem>_segmentation.png`` beside the image, 8-bit {0, 255} like the ground truth."""
        return image.with_name(f"{image.stem}{MASK_SUFFIX}.png")

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return (folder / INPUT_DIR).is_dir() or (folder / TRUTH_DIR).is_dir()

    def _scan(self) -> Scan:
        scan = Scan()
        images = image_files(self.root / INPUT_DIR, scan, {".jpg", ".jpeg", ".png"}, "dermoscopy images")
        masks = image_files(self.root / TRUTH_DIR, scan, {".png"}, "lesion masks")
        if images is None or masks is None:
            return scan
        by_image = index_by_id(images, _image_id, scan, "image")
        by_mask = index_by_id(masks, _mask_id, scan, f"mask (<image id>{MASK_SUFFIX}.png)")
        for cid, image, mask_files in pair_files(by_image, by_mask, scan):
            scan.cases.append(Case(cid, cid, image, mask_files))
        scan.counts.update(images=len(images), masks=len(masks))
        return scan

    @classmethod
    def make_fixture(
        cls, root: Path, ids: tuple[str, ...] = ("ISIC_0000001", "ISIC_0000002", "ISIC_0000010")
    ) -> Fixture:
        """JPEG images with PNG masks (by default three, ids with a gap: 1, 2, 10) and a non-image file to
        ignore."""
        out = Fixture(root)
        for i, cid in enumerate(ids):
            image = write(root / INPUT_DIR / f"{cid}.jpg", rgb(i))
            mask = blob(i)
            masks = (write(root / TRUTH_DIR / f"{cid}{MASK_SUFFIX}.png", mask),)
            out.add(cid, image, masks, mask, duplicate=image.with_suffix(".png"))
        (root / INPUT_DIR / "ATTRIBUTION.txt").write_text("ISIC\n")
        return out
