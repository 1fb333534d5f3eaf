"""Preprocessing: resize, min-max, patching (paper's 4 patches per ISBI image), cache reuse and rebuild."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bench.datasets.base import Case, SegDataset
from bench.datasets.prepare import PreparedData, load_cache, patch_geometry, patch_offsets, prepare
from bench.datasets.synthetic import SyntheticDataset


class FakeFiles(SegDataset):
    """A tiny reader over PNG pairs ``<id>.png`` / ``<id>_mask.png`` written by the test."""

    name = "fake"
    channels = 3

    def __init__(self, root: Path, patch_based: bool = False, log: list[str] | None = None) -> None:
        super().__init__(root)
        self.patch_based = patch_based
        self.log = log if log is not None else []

    def list_cases(self) -> list[Case]:
        assert self.root is not None
        return [
            Case(p.stem, p.stem, p, (p.with_name(f"{p.stem}_mask.png"),))
            for p in sorted(self.root.glob("*.png"))
            if not p.stem.endswith("_mask")
        ]

    def read(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        self.log.append(case.case_id)
        image = cv2.imread(str(case.image_path), cv2.IMREAD_COLOR)
        return image, cv2.imread(str(case.mask_paths[0]), cv2.IMREAD_GRAYSCALE) > 0


def _write(root: Path, name: str, shape: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(20, 200, (*shape, 3), dtype=np.uint8)
    mask = np.zeros(shape, np.uint8)
    mask[shape[0] // 4 : shape[0] // 2, shape[1] // 4 : shape[1] // 2] = 255
    cv2.imwrite(str(root / f"{name}.png"), image)
    cv2.imwrite(str(root / f"{name}_mask.png"), mask)


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "fake"
    root.mkdir()
    for i, shape in enumerate([(40, 50), (40, 50), (30, 30)]):
        _write(root, f"img{i}", shape, i)
    return root


def test_resize_and_minmax(fake_root: Path) -> None:
    data = prepare(FakeFiles(fake_root), 32)
    assert data.images.shape == (3, 3, 32, 32) and data.images.dtype == np.float32
    assert data.masks.shape == (3, 32, 32) and data.masks.dtype == bool
    images = np.asarray(data.images)
    assert np.allclose(images.reshape(3, -1).min(1), 0) and np.allclose(images.reshape(3, -1).max(1), 1)
    assert data.case_ids == ("img0", "img1", "img2") and data.groups == data.case_ids
    assert data.native_shapes == ((40, 50), (40, 50), (30, 30)) and data.unit == "image"
    assert 0.05 < data.masks.mean() < 0.08 and set(np.unique(data.masks)) == {False, True}


def test_index(fake_root: Path) -> None:
    data = prepare(FakeFiles(fake_root), 16)
    assert data.index(["img2", "img0"]).tolist() == [2, 0]
    with pytest.raises(KeyError, match="nope"):
        data.index(["img0", "nope"])


def test_patch_grid_gives_the_papers_isbi_count() -> None:
    shape, step = patch_geometry((512, 512), 256, 256, 16)
    assert shape == (512, 512) and step == 240
    assert len(patch_offsets(512, 256, step)) ** 2 == 4
    shape, step = patch_geometry((522, 775), 256, 256, 16)
    assert len(patch_offsets(shape[0], 256, step)) * len(patch_offsets(shape[1], 256, step)) == 6
    shape, step = patch_geometry((512, 512), 64, 256, 16)  # same field of view at 64 px
    assert shape == (128, 128) and step == 60 and len(patch_offsets(128, 64, step)) == 2


def test_synthetic_patches_keep_their_group() -> None:
    data = prepare(SyntheticDataset("isbi2012", n=2, size=64), 32)
    assert data.case_ids == tuple(f"syn00{i}_p0{k}" for i in range(2) for k in range(4))
    assert data.groups == ("syn000",) * 4 + ("syn001",) * 4 and data.unit == "patch"
    assert data.images.shape == (8, 1, 32, 32) and data.options["patch_size"] == 256


def test_patches_of_a_real_layout(fake_root: Path) -> None:
    data = prepare(FakeFiles(fake_root, patch_based=True), 16, patch_size=20, patch_padding=4)
    # 40 x 50 source, scale 16/20 -> 32 x 40, step 16 - round(4 * 16 / 20) = 13: 2 x 2 patches; 30x30 -> 24x24: 1
    assert [c for c in data.case_ids if c.startswith("img0")] == [f"img0_p0{k}" for k in range(4)]
    assert len(data) == 9 and set(data.source_ids) == {"img0", "img1", "img2"}


def test_too_small_for_a_patch(fake_root: Path) -> None:
    with pytest.raises(ValueError, match="smaller than one"):
        prepare(FakeFiles(fake_root, patch_based=True), 16, patch_size=40)


def test_cache_reused_and_rebuilt_when_a_file_changes(fake_root: Path, tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", []
    first = prepare(FakeFiles(fake_root, log=log), 16, cache_dir=cache)
    assert len(list(cache.glob("*.meta.json"))) == 1 and len(list(cache.glob("*.npy"))) == 4
    assert not list(cache.glob(".*tmp"))
    log.clear()
    again = prepare(FakeFiles(fake_root, log=log), 16, cache_dir=cache)
    assert log == [] and again.fingerprint == first.fingerprint
    assert np.array_equal(again.images, first.images) and np.array_equal(again.masks, first.masks)
    path = fake_root / "img1.png"
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same bytes, same data
    touched = prepare(FakeFiles(fake_root, log=log), 16, cache_dir=cache)
    assert touched.fingerprint == first.fingerprint and log == []
    _write(fake_root, "img1", (40, 50), 99)  # same size, new pixels
    changed = prepare(FakeFiles(fake_root, log=log), 16, cache_dir=cache)
    assert changed.fingerprint != first.fingerprint and log == ["img0", "img1", "img2"]
    assert prepare(FakeFiles(fake_root), 24, cache_dir=cache).fingerprint != changed.fingerprint


def test_synthetic_fingerprint_follows_options(tmp_path: Path) -> None:
    fps = {
        prepare(SyntheticDataset("dsb2018", **kw), 16, cache_dir=tmp_path).fingerprint
        for kw in ({"n": 2}, {"n": 2}, {"n": 3}, {"n": 2, "seed": 1})
    }
    assert len(fps) == 3


def test_load_cache_refuses_other_fingerprint(fake_root: Path, tmp_path: Path) -> None:
    prepare(FakeFiles(fake_root), 16, cache_dir=tmp_path)
    path = next(tmp_path.glob("*.meta.json"))
    assert isinstance(load_cache(path), PreparedData)
    with pytest.raises(ValueError, match="delete it"):
        load_cache(path, "0" * 64)


def test_reader_contract_is_checked(fake_root: Path) -> None:
    class Grey(FakeFiles):
        def read(self, case: Case) -> Any:
            image, mask = super().read(case)
            return image[..., 0], mask

    with pytest.raises(ValueError, match="expected uint8 H x W x 3"):
        prepare(Grey(fake_root), 16)


def test_table1_from_prepared_data(fake_root: Path) -> None:
    from bench.datasets.summary import paper_counts, table1

    isbi = prepare(SyntheticDataset("isbi2012", n=2, size=64), 32)
    df = table1(isbi, prepare(FakeFiles(fake_root), 16))
    first = df.iloc[0]
    assert (first["dataset"], first["source"], first["images"], first["rows"], first["unit"]) == (
        "isbi2012",
        "synthetic",
        2,
        8,
        "patch",
    )
    assert (first["majority_size"], first["channels"], first["paper_images"], first["paper_majority_size"]) == (
        "128x128",
        1,
        30,
        "512x512",
    )
    fake = df.iloc[1]
    assert (fake["images"], fake["majority_size"], fake["majority_share"]) == (3, "50x40", 2 / 3)
    assert pd_isna(fake["paper_images"])
    assert paper_counts()["table1"]["isic2018"]["images"] == 2594


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_fingerprint_follows_content_not_modification_times(fake_root: Path, tmp_path: Path) -> None:
    import shutil

    from bench.datasets.prepare import HASH_CACHE, fingerprint

    ds = FakeFiles(fake_root)
    opts = {"size": 16}
    base = fingerprint(ds, ds.cases(), opts, tmp_path)
    assert (tmp_path / HASH_CACHE).exists()
    for p in fake_root.iterdir():  # touch every file
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5 * 10**9))
    assert fingerprint(ds, ds.cases(), opts, tmp_path) == base
    copy = tmp_path / "copy" / "fake"
    shutil.copytree(fake_root, copy, copy_function=shutil.copy)  # a copy without -p: new mtimes, new folder
    assert fingerprint(FakeFiles(copy), FakeFiles(copy).cases(), opts, tmp_path) == base
    target = copy / "img0_mask.png"
    target.write_bytes(target.read_bytes()[:-1] + bytes([target.read_bytes()[-1] ^ 1]))
    assert fingerprint(FakeFiles(copy), FakeFiles(copy).cases(), opts, tmp_path) != base


def test_unchanged_files_are_not_hashed_again(fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.datasets.prepare as prep

    ds = FakeFiles(fake_root)
    first = prep.fingerprint(ds, ds.cases(), {}, tmp_path)
    hashed: list[Path] = []
    real = prep.file_sha256
    monkeypatch.setattr(prep, "file_sha256", lambda p, *a: hashed.append(p) or real(p, *a))
    assert prep.fingerprint(ds, ds.cases(), {}, tmp_path) == first and hashed == []
    p = fake_root / "img2.png"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))
    assert prep.fingerprint(ds, ds.cases(), {}, tmp_path) == first and hashed == [p]
    assert not list(tmp_path.glob(".*tmp"))


SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.real_data
@pytest.mark.skipif(not (SHARED_DATA / "glas2015").is_dir(), reason="the real samples (../shared/data) are not present")
def test_a_copy_of_real_data_without_kept_times_has_the_same_fingerprint(tmp_path: Path) -> None:
    import shutil

    from bench.datasets import open_dataset
    from bench.datasets.prepare import fingerprint

    copy = tmp_path / "glas2015"
    shutil.copytree(SHARED_DATA / "glas2015", copy, copy_function=shutil.copy)  # like `cp -r` without -p
    original, copied = open_dataset("glas2015", SHARED_DATA / "glas2015"), open_dataset("glas2015", copy)
    assert fingerprint(original, original.cases(), {}, tmp_path / "cache") == fingerprint(
        copied, copied.cases(), {}, tmp_path / "cache"
    )
