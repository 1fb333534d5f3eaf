"""Tiny native layouts for the tests: each dataset's own fixture maker (``make_fixture`` in its file),
under the names the tests use, and helpers that damage a good file and return the path a report must name.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from bench.datasets.base import Fixture as Layout
from bench.datasets.dsb2018 import DSB2018
from bench.datasets.dsb2018 import FIXTURE_IDS as DSB_IDS
from bench.datasets.fixtures import H, W, blob, grey, rgb, write
from bench.datasets.glas2015 import FIXTURE_NAMES as GLAS_NAMES
from bench.datasets.glas2015 import GlaS2015
from bench.datasets.isbi2012 import ISBI2012
from bench.datasets.isic2018 import ISIC2018
from bench.datasets.kvasir_seg import KvasirSEG
from bench.datasets.lgg_mri import FIXTURE_PATIENTS as LGG_PATIENTS
from bench.datasets.lgg_mri import LGGMRI

__all__ = [
    "DSB_IDS",
    "GLAS_NAMES",
    "LGG_PATIENTS",
    "H",
    "Layout",
    "W",
    "blob",
    "grey",
    "make_dsb",
    "make_glas",
    "make_isbi_png",
    "make_isbi_tiff",
    "make_isic",
    "make_kvasir",
    "make_lgg",
    "make_non_binary",
    "make_wrong_size",
    "rewrite",
    "rgb",
    "truncate",
    "write",
]

make_isic = ISIC2018.make_fixture
make_isbi_png = partial(ISBI2012.make_fixture, variant="png")
make_isbi_tiff = partial(ISBI2012.make_fixture, variant="tiff")
make_lgg = LGGMRI.make_fixture
make_glas = GlaS2015.make_fixture
make_dsb = DSB2018.make_fixture
make_kvasir = KvasirSEG.make_fixture


# ---------------------------------------------------------------- damage
def truncate(path: Path) -> Path:
    """Keep the first half of the file's bytes (a download cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def rewrite(path: Path, arr: np.ndarray) -> Path:
    """Replace a file's pixels (same name and format)."""
    path.unlink()
    return write(path, arr)


def make_wrong_size(mask_path: Path) -> Path:
    """Rewrite a mask one column wider than its image."""
    return rewrite(mask_path, blob(99, H, W + 1))


def make_non_binary(mask_path: Path) -> Path:
    """Rewrite a mask with a grey value 128 (a JPEG-style or resized mask)."""
    mask = blob(98)
    mask[0, :4] = 128
    return rewrite(mask_path, mask)
