"""The memory-mapped cache: the same arrays and per-image rows as the in-memory path, atomic writes,
damaged files rebuilt with a warning, batches gathered by index without copying a split."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.architectures import create_model
from bench.config import TrainConfig
from bench.datasets.prepare import array_path, load_cache, normalize, prepare
from bench.datasets.synthetic import SyntheticDataset
from bench.run.evaluate import predict
from bench.run.execute import Rows, tensors
from bench.run.scoring import score
from bench.run.train import fit


def _data(cache: Path | None, n: int = 12):
    return prepare(SyntheticDataset("dsb2018", n=n), 32, cache_dir=cache)


def test_cache_is_memory_mapped_and_equal_to_the_in_memory_path(tmp_path: Path) -> None:
    plain, built, again = _data(None), _data(tmp_path), _data(tmp_path)
    for data in (built, again):
        assert isinstance(data.pixels, np.memmap) and isinstance(data.masks, np.memmap)
        assert not data.pixels.flags.writeable  # opened read-only: workers share the page cache
        for name in ("pixels", "masks", "lo", "hi"):
            assert np.array_equal(getattr(data, name), getattr(plain, name)), name
        assert data.case_ids == plain.case_ids and data.groups == plain.groups
    # per-row normalisation of gathered rows == normalising the whole set, then indexing (the old path)
    whole = normalize(np.asarray(plain.pixels), plain.lo, plain.hi)
    rows = np.array([5, 0, 11, 3, 3])
    assert np.array_equal(again.images[rows], whole[rows]) and np.array_equal(np.asarray(again.images), whole)
    assert again.images[2].shape == (3, 32, 32) and np.array_equal(again.images[2:4], whole[2:4])


def test_rows_gather_only_what_is_asked(tmp_path: Path) -> None:
    data = _data(tmp_path)
    ids = list(data.case_ids[::2])
    x, y = tensors(data, ids)
    assert isinstance(x, Rows) and len(x) == len(ids) and x.shape == (len(ids), 3, 32, 32) and y.shape[1] == 1
    idx = data.index(ids)
    old_x = torch.from_numpy(np.asarray(data.images)[idx])  # the old whole-split copy
    old_y = torch.from_numpy(np.asarray(data.masks)[idx][:, None].astype(np.float32))
    pick = torch.tensor([3, 0, 5])
    assert torch.equal(x[pick], old_x[pick]) and torch.equal(y[pick], old_y[pick])
    assert torch.equal(x[1:4], old_x[1:4]) and x[pick].dtype == torch.float32


@pytest.mark.slow
def test_training_on_gathered_batches_gives_identical_weights_and_rows(tmp_path: Path) -> None:
    """A tiny fit on Rows views == the same fit on the old whole-split tensors, bit for bit."""
    data = _data(tmp_path, n=16)
    train_ids, sel_ids, test_ids = list(data.case_ids[:8]), list(data.case_ids[8:11]), list(data.case_ids[11:])
    cfg = TrainConfig(image_size=32, width=4, depth=3, epochs=2)

    def old(ids):
        idx = data.index(ids)
        return (
            torch.from_numpy(np.asarray(data.images)[idx]),
            torch.from_numpy(np.asarray(data.masks)[idx][:, None].astype(np.float32)),
        )

    results = []
    for make in (old, lambda ids: tensors(data, ids)):
        torch.manual_seed(0)
        model = create_model("unet", in_channels=3, classes=1, width=4, depth=3)
        out = fit(model, cfg, make(train_ids), make(sel_ids), seed=1)
        probs = predict(out.model, make(test_ids)[0], 4)
        rows = score(probs, np.asarray(data.masks)[data.index(test_ids)], test_ids, ["g"] * len(test_ids))
        results.append((out.model.state_dict(), out.history, rows))
    (w0, h0, r0), (w1, h1, r1) = results
    assert h0 == h1 and all(torch.equal(w0[k], w1[k]) for k in w0)
    assert r0.equals(r1)


def test_cache_files_are_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[str] = []
    real_replace = os.replace

    def spy(src, dst):
        assert Path(src).name.startswith(".") and Path(src).name.endswith(".tmp")
        replaced.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    _data(tmp_path)
    # the masks file is finished inside the images file's writer (both stream together), the metadata last
    assert [n.split(".", 1)[1] for n in replaced] == ["masks.npy", "images.npy", "lo.npy", "hi.npy", "meta.json"]
    assert not list(tmp_path.glob(".*"))

    # a writer killed half-way (here while reading the fifth source image) leaves no file under a final
    # name, no temporary file and no metadata; the next build starts over
    other = tmp_path / "other"
    real_read, reads = SyntheticDataset.read, []

    def dies(self, case):
        reads.append(case.case_id)
        if len(reads) == 5:
            raise KeyboardInterrupt
        return real_read(self, case)

    monkeypatch.setattr(SyntheticDataset, "read", dies)
    with pytest.raises(KeyboardInterrupt):
        _data(other)
    assert list(other.iterdir()) == []
    monkeypatch.setattr(SyntheticDataset, "read", real_read)
    assert np.array_equal(_data(other).masks, _data(None).masks)


def test_the_build_streams_rows_to_disk_instead_of_holding_the_dataset(tmp_path: Path) -> None:
    """Building the cache holds one source image at a time, not the dataset: the traced peak of the build
    does not grow with the number of images (the in-memory path's grows with it, twice over)."""
    import tracemalloc

    def peak(n: int, cache: Path | None) -> int:
        ds = SyntheticDataset("dsb2018", n=n, size=64)
        ds.read(ds.cases()[0])  # the generator's one-off set-up is not the build
        tracemalloc.start()
        try:
            prepare(ds, 64, cache_dir=cache)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(24, tmp_path / "small"), peak(240, tmp_path / "large")
    held_small, held_large = peak(24, None), peak(240, None)
    row_bytes = 4 * 64 * 64  # 3 uint8 channels and a bool mask
    assert held_large - held_small > 2 * 216 * row_bytes  # every row, then the stacked arrays
    assert large - small < 0.1 * 216 * row_bytes, (small, large)
    # and the streamed entry holds exactly the in-memory arrays
    ds = SyntheticDataset("dsb2018", n=240, size=32)
    again, plain = prepare(ds, 32, cache_dir=tmp_path / "large"), prepare(ds, 32, cache_dir=None)
    assert np.array_equal(again.pixels, plain.pixels) and np.array_equal(again.masks, plain.masks)


def test_a_patch_based_entry_gets_its_row_count_in_the_header(tmp_path: Path) -> None:
    """Patch-based datasets learn their row count while cutting: the header is rewritten in place."""
    ds = SyntheticDataset("isbi2012", n=3)
    built, plain = prepare(ds, 32, cache_dir=tmp_path), prepare(ds, 32, cache_dir=None)
    assert len(built) == len(plain) > len(ds.cases())
    assert np.array_equal(built.pixels, plain.pixels) and np.array_equal(built.masks, plain.masks)
    meta = next(tmp_path.glob("*.meta.json"))
    assert np.load(array_path(meta, "images")).shape == plain.pixels.shape


@pytest.mark.parametrize("damage", ["truncate", "header", "delete", "meta"])
def test_a_damaged_cache_file_is_rebuilt_with_a_warning_naming_it(tmp_path: Path, damage: str) -> None:
    first = _data(tmp_path)
    fp, pixels, masks = first.fingerprint, np.array(first.pixels), np.array(first.masks)
    del first  # damaging a mapped file in place would invalidate its mapping (SIGBUS on access)
    meta = next(tmp_path.glob("*.meta.json"))
    target = meta if damage == "meta" else array_path(meta, "images")
    raw = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "header":
        target.write_bytes(b"not a numpy file" + raw[16:])
    elif damage == "delete":
        target.unlink()
    else:
        target.write_text("{broken")
    with pytest.warns(UserWarning, match=rf"cache file .*{target.name}.*rebuilding the cache"):
        again = _data(tmp_path)
    assert np.array_equal(again.pixels, pixels) and np.array_equal(again.masks, masks)
    assert isinstance(load_cache(meta, fp).pixels, np.memmap)  # repaired on disk


#: A ``bench run`` driver that prints its own whole-process peak (the kernel's, ``ru_maxrss``) when it ends.
PEAK_DRIVER = (
    "import resource, sys; from bench.cli import main; rc = main(sys.argv[1:]); "
    "print('driver peak KiB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); raise SystemExit(rc)"
)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
def test_the_first_runs_driver_peak_does_not_grow_with_the_dataset(tmp_path: Path) -> None:
    """The whole driver process of a first ``bench run`` (it builds the cache, then times the step and
    runs the jobs in worker processes) peaks at the same memory for 24 and 400 images: the rows stream
    to disk and the driver imports no torch. Holding the dataset (the old build) added 2.6x its bytes."""

    def first_run(n: int) -> tuple[float, float]:
        results = tmp_path / str(n)
        args = ["run", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--dry-run", "--results", str(results)]
        for setting in ("image_size=128", "width=4", "depth=3", f"synthetic_n={n}"):
            args += ["--set", setting]
        out = subprocess.run(
            [sys.executable, "-c", PEAK_DRIVER, *args], capture_output=True, text=True, timeout=300, check=True
        ).stdout
        peak = int(out.rsplit("driver peak KiB", 1)[1].split()[0]) * 1024
        return peak, sum(p.stat().st_size for p in (results / "cache").glob("*.npy"))

    (small, _), (large, cache_bytes) = first_run(24), first_run(400)
    assert cache_bytes > 20 * 2**20
    assert large - small < 0.2 * cache_bytes, (small / 2**20, large / 2**20, cache_bytes / 2**20)
