"""Pixels and files for the fixture makers (``make_fixture``): tiny random images and masks, written in
any format the readers accept. Fixture images are W x H = 40 x 32, so a transposed read is caught.
"""

from __future__ import annotations

import numpy as np

from bench.datasets.decode import save_pixels

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


#: Save an array by suffix, creating folders (``bench.datasets.decode.save_pixels``).
write = save_pixels
