"""Pixels and files for the fixture makers (``make_fixture``): tiny random images and masks, written in
any format the readers accept. Fixture images are W x H = 40 x 32, so a transposed read is caught.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

W, H = 40, 32


def grey(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """H x W uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """H x W x 3 uint8 noise."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def blob(seed: int, h: int = H, w: int = W, empty: bool = False) -> np.ndarray:
    """A {0, 255} uint8 mask with one random rectangle (all 0 when ``empty``)."""
    mask = np.zeros((h, w), np.uint8)
    if not empty:
        r = np.random.default_rng(seed)
        top, left = int(r.integers(0, h // 2)), int(r.integers(0, w // 2))
        mask[top : top + int(r.integers(3, h // 2)), left : left + int(r.integers(3, w // 2))] = 255
    return mask


def write(path: Path, arr: np.ndarray, stack: bool = False, quality: int = 95) -> Path:
    """Save ``arr`` by suffix (creating folders): TIFF through tifffile (``stack``: one grey page per
    first-axis slice), everything else through Pillow (JPEG at ``quality``)."""
    import tifffile
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".tif", ".tiff"):
        rgb_image = arr.ndim == 3 and arr.shape[-1] == 3 and not stack
        tifffile.imwrite(path, arr, photometric="rgb" if rgb_image else "minisblack")
    else:
        jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        Image.fromarray(arr).save(path, **({"quality": quality} if jpeg else {}))
    return path
