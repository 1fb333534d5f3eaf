"""Synthetic stand-ins: deterministic, right channels/shapes, and each modality's hard property."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from bench.datasets import DATASETS, PAPER_DATASETS, list_datasets
from bench.datasets.synthetic import GENERATORS, SyntheticDataset

NAMES = list_datasets()  # every registered dataset has a stand-in


def _checksum(ds: SyntheticDataset) -> list[int]:
    out = []
    for case in ds.cases():
        image, mask = ds.read(case)
        out.append(int(image.astype(np.int64).sum()) * 7 + int(mask.sum()))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_read_shapes_and_types(name: str) -> None:
    ds = SyntheticDataset(name, n=3, size=32)
    cases = ds.cases()
    assert len(cases) == 3 and len({c.case_id for c in cases}) == 3
    assert ds.source == "synthetic" and ds.options() == {"n": 3, "size": 32, "seed": 0}
    for case in cases:
        image, mask = ds.read(case)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == ds.channels
        assert mask.dtype == bool and mask.shape == image.shape[:2]


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_from_name_and_seed(name: str) -> None:
    a, b = SyntheticDataset(name, n=3, size=32), SyntheticDataset(name, n=3, size=32)
    assert [c.case_id for c in a.cases()] == [c.case_id for c in b.cases()]
    assert _checksum(a) == _checksum(b)
    assert _checksum(a) != _checksum(SyntheticDataset(name, n=3, size=32, seed=1))


def test_independent_of_python_hash_seed() -> None:
    code = (
        "from bench.datasets.synthetic import SyntheticDataset as S; import numpy as np;"
        "ds = S('glas2015', n=1, size=32); im, m = ds.read(ds.cases()[0]); print(int(im.sum()), int(m.sum()))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1


@pytest.mark.parametrize("name", NAMES)
def test_facts_come_from_the_registry(name: str) -> None:
    real = DATASETS.get(name).factory
    ds = SyntheticDataset(name, n=1)
    facts = ("name", "display_name", "modality", "channels", "patch_based", "paper_count")
    assert [getattr(ds, f) for f in facts] == [getattr(real, f) for f in facts]
    assert ds.shape_of(0) == tuple(max(16, round(v * 128 / 256)) for v in real.native_shape())


def test_paper_datasets_have_their_own_generators_others_the_generic_one() -> None:
    assert set(GENERATORS) == set(PAPER_DATASETS)
    ds = SyntheticDataset("kvasir_seg", n=4, size=32)
    assert ds.display_name == "Kvasir-SEG" and ds.n == 4
    shares = [ds.read(c)[1].mean() for c in ds.cases()]
    assert all(0.0 < s < 0.6 for s in shares)
    assert SyntheticDataset("kvasir_seg").n == 32  # the default for a dataset without its own generator


def test_sizes_follow_the_real_majority_size() -> None:
    assert SyntheticDataset("isbi2012", n=1, size=256).shape_of(0) == (512, 512)
    assert SyntheticDataset("glas2015", n=1, size=128).shape_of(0) == (261, 388)
    dsb = SyntheticDataset("dsb2018", n=5, size=64)
    assert [dsb.shape_of(i) for i in range(5)] == [(64, 80)] * 4 + [(64, 64)]


def test_isbi_foreground_is_large() -> None:
    ds = SyntheticDataset("isbi2012", n=3, size=64)
    share = np.mean([ds.read(c)[1].mean() for c in ds.cases()])
    assert 0.7 < share < 0.86


def test_lgg_groups_patients_and_has_many_empty_masks() -> None:
    ds = SyntheticDataset("lgg_mri", n=30, size=32)
    cases = ds.cases()
    groups = [c.group for c in cases]
    assert all(c.case_id.startswith(c.group + "_") for c in cases)
    sizes = [groups.count(g) for g in set(groups)]
    assert min(sizes) >= 1 and max(sizes) >= 2 and len(set(groups)) >= 7
    empty = sum(not ds.read(c)[1].any() for c in cases)
    assert empty == 30 - round(0.4 * 30)


def test_dsb_brightest_pixels_are_not_nuclei() -> None:
    ds = SyntheticDataset("dsb2018", n=5, size=64)
    for case in ds.cases():
        if dict(case.meta)["style"] != "fluorescence":
            continue
        image, mask = ds.read(case)
        grey = image[..., 0].astype(int)
        assert grey[~mask].max() > grey[mask].max()  # outlier particles outshine every nucleus
        assert 0.01 < mask.mean() < 0.2


def test_isic_has_one_lesion() -> None:
    ds = SyntheticDataset("isic2018", n=3, size=32)
    for case in ds.cases():
        mask = ds.read(case)[1]
        assert cv2.connectedComponents(mask.astype(np.uint8))[0] == 2  # background + one lesion


def test_glas_has_glands_on_background() -> None:
    ds = SyntheticDataset("glas2015", n=2, size=64)
    shares = [ds.read(c)[1].mean() for c in ds.cases()]
    assert all(0.1 < s < 0.8 for s in shares)


def test_bad_arguments() -> None:
    with pytest.raises(KeyError, match="nope"):
        SyntheticDataset("nope")
    with pytest.raises(ValueError, match="n must be"):
        SyntheticDataset("isbi2012", n=0)
