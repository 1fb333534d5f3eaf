"""The memory-mapped cache: the same arrays and per-image rows as the in-memory path, atomic writes,
damaged files rebuilt with a warning, batches gathered by index without copying a split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.architectures import create_model
from bench.config import TrainConfig
from bench.datasets.prepare import array_path, load_cache, normalize, prepare
from bench.datasets.synthetic import SyntheticDataset
from bench.run.evaluate import predict, score
from bench.run.execute import Rows, tensors
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
    assert [n.split(".", 1)[1] for n in replaced] == ["images.npy", "masks.npy", "lo.npy", "hi.npy", "meta.json"]
    assert not list(tmp_path.glob(".*"))

    # a writer killed half-way leaves no partial file under a final name and no metadata
    other = tmp_path / "other"
    real_save = np.save

    def dies(f, a, **kw):
        if a.dtype == np.bool_:
            f.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real_save(f, a, **kw)

    monkeypatch.setattr(np, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        _data(other)
    assert sorted(p.name.split(".", 1)[1] for p in other.iterdir()) == ["images.npy"]
    monkeypatch.setattr(np, "save", real_save)
    assert np.array_equal(_data(other).masks, _data(None).masks)


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
