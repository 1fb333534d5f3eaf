"""A BUSI-like breast ultrasound dataset (Al-Dhabyani et al., Data in Brief 28, 2020), written as a user
adds a dataset (docs/datasets.md, "Adding a dataset"): one file, one class. ``test_extension.py`` runs the
suite's generic dataset tests on it; it is not part of the package.

Its quirk: a lesion in several parts has several mask files, ``benign (1)_mask.png`` and
``benign (1)_mask_1.png``, read as their union.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.datasets import register_dataset
from bench.datasets.base import Case, Fixture, NativeDataset, Scan
from bench.datasets.fixtures import blob, grey, write
from bench.datasets.layout import group_by_id, image_files, index_by_id, pair_files

CLASSES = ("benign", "malignant", "normal")
_NAME_RE = re.compile(r"^(benign|malignant|normal) \((\d+)\)(_mask(?:_\d+)?)?$")
#: The fixture's cases: (class, number, mask parts; 0 = one empty mask, as for the normal images).
FIXTURE_CASES = (("benign", 1, 1), ("benign", 2, 2), ("malignant", 1, 3), ("normal", 1, 0))


def _case_id(mask: bool) -> Callable[[Path], str | None]:
    """Case id ``<class> (<N>)`` (N as an integer) of an image file (``mask=False``) or a mask file."""

    def key(path: Path) -> str | None:
        match = _NAME_RE.match(path.stem)
        return f"{match.group(1)} ({int(match.group(2))})" if match and bool(match.group(3)) == mask else None

    return key


@register_dataset("busi", aliases=("busi-like",))
class BUSILike(NativeDataset):
    """Breast ultrasound (grey, stored as RGB PNG) in one folder per class: benign, malignant, normal.

    **Foreground = lesion**: the union of a case's mask files ``<name>_mask.png``, ``<name>_mask_1.png``,
    ... ({0, 255}); a normal image has one empty mask. Case id = ``<class> (<N>)``; each image is its own
    group.
    """

    name = "busi"
    display_name = "BUSI"
    modality = "breast ultrasound"
    channels = 1
    layout = (
        "benign/benign (N).png + benign/benign (N)_mask.png [+ benign (N)_mask_1.png, ...]   (the same in "
        "malignant/ and normal/; masks 0 or 255, several masks of one image are OR-ed)"
    )
    mask_stem = r".+_mask(_\d+)?"
    mask_folders = ()

    @classmethod
    def looks_like(cls, folder: Path) -> bool:
        return all((folder / c).is_dir() for c in CLASSES[:2])

    def _scan(self) -> Scan:
        scan = Scan()
        files = []
        for label in CLASSES:
            found = image_files(self.root / label, scan, {".png"}, f"{label} images and masks")
            files += found or []
        masks = [p for p in files if self.is_mask_file(Path(p.name))]
        images = index_by_id([p for p in files if p not in masks], _case_id(False), scan, "image (<class> (N).png)")
        by_case = group_by_id(masks, _case_id(True), scan, "mask (<class> (N)_mask[_K].png)")
        for cid, image, mask_files in pair_files(images, by_case, scan):
            scan.cases.append(Case(cid, cid, image, mask_files))
        scan.counts.update(images=len(images), masks=len(masks))
        return scan

    @classmethod
    def make_fixture(cls, root: Path) -> Fixture:
        """Four cases, grey stored as RGB: one mask, two masks, three masks, one empty mask (normal)."""
        out = Fixture(root)
        for i, (label, n, parts) in enumerate(FIXTURE_CASES):
            cid = f"{label} ({n})"
            image = write(root / label / f"{cid}.png", np.repeat(grey(i)[..., None], 3, axis=2))
            stored = [blob(10 * i + k) for k in range(parts)] or [blob(0, empty=True)]
            names = [f"{cid}_mask.png"] + [f"{cid}_mask_{k}.png" for k in range(1, len(stored))]
            masks = tuple(write(root / label / name, m) for name, m in zip(names, stored))
            duplicate = image.with_name(f"{label} (0{n}).png")  # the same number, zero-padded: the same id
            out.add(cid, image, masks, np.any(stored, axis=0), duplicate=duplicate)
        return out
