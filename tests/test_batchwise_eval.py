"""Scoring and storing predictions batch by batch, and cache rows read with positional reads: the same
rows, the same stored predictions and the same batches as the whole-split path, bit for bit."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.architectures import create_model
from bench.datasets.prepare import prepare, take_rows
from bench.datasets.synthetic import SyntheticDataset
from bench.results.predictions import NonFinitePrediction, load_predictions, save_predictions, write_predictions
from bench.run.evaluate import Part, predict, predict_and_score
from bench.run.execute import tensors
from bench.run.scoring import score


def _data(cache: Path, n: int = 14):
    return prepare(SyntheticDataset("dsb2018", n=n), 32, cache_dir=cache)


def _model() -> nn.Module:
    torch.manual_seed(3)
    return create_model("unet", in_channels=3, classes=1, width=4, depth=3).eval()


def _parts(data):
    ids = {"val": list(data.case_ids[1:6]), "test": list(data.case_ids[7:14])}
    return ids, [
        Part(name, *tensors(data, ids[name]), ids[name], [data.groups[i] for i in data.index(ids[name])])
        for name in ids
    ]


def test_batchwise_rows_and_stored_predictions_equal_the_whole_split_path(tmp_path: Path) -> None:
    data, model = _data(tmp_path), _model()
    ids, parts = _parts(data)
    path = tmp_path / "job.pred.npz"
    rows, seconds = predict_and_score(model, parts, 3, "cpu", path)  # 3 divides neither split: a short last batch
    assert seconds > 0

    # the old path: predict each whole split, score it, save the concatenation at once
    whole, kept = [], []
    for name in ("val", "test"):
        idx = data.index(ids[name])
        probs = predict(model, torch.from_numpy(np.asarray(data.images)[idx]), 3)
        whole.append(
            score(probs, np.asarray(data.masks)[idx], ids[name], [data.groups[i] for i in idx]).assign(split=name)
        )
        kept.append(probs)
    pd.testing.assert_frame_equal(rows, pd.concat(whole, ignore_index=True), check_exact=True)
    old = tmp_path / "old.pred.npz"
    save_predictions(old, np.concatenate(kept), ids["val"] + ids["test"])
    with np.load(path) as new_z, np.load(old) as old_z:
        assert sorted(new_z.files) == sorted(old_z.files)
        for name in old_z.files:
            assert np.array_equal(new_z[name], old_z[name]) and new_z[name].dtype == old_z[name].dtype, name

    # the stored predictions re-score to exactly the same rows, from the masks and from the quantised probabilities
    stored_ids, stored_probs, stored_masks = load_predictions(path)
    assert stored_ids == ids["val"] + ids["test"]
    idx = data.index(stored_ids)
    refs, groups = np.asarray(data.masks)[idx], [data.groups[i] for i in idx]
    key = rows.drop(columns="split")
    pd.testing.assert_frame_equal(score(stored_masks, refs, stored_ids, groups), key, check_exact=True)
    pd.testing.assert_frame_equal(score(stored_probs, refs, stored_ids, groups), key, check_exact=True)


def test_stored_probabilities_stay_on_the_side_of_the_threshold_of_their_mask(tmp_path: Path) -> None:
    probs = np.array(
        [
            [
                [
                    0.5,
                    np.nextafter(np.float32(0.5), np.float32(1)),
                    np.nextafter(np.float32(0.5), np.float32(0)),
                    0.0,
                    1.0,
                    0.25,
                ]
            ]
        ],
        np.float32,
    )
    save_predictions(tmp_path / "p.pred.npz", probs, ["c"])
    _, stored, masks = load_predictions(tmp_path / "p.pred.npz")
    assert masks.tolist() == [[[False, True, False, False, True, False]]]
    assert np.array_equal(stored > 0.5, masks)  # exactly 0.5 is background: stored as 127, not 128
    assert (np.rint(stored * 255).astype(int) == [127, 128, 127, 0, 255, 64]).all()


def test_write_predictions_refuses_a_wrong_count(tmp_path: Path) -> None:
    probs = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="4 predictions written, expected 5"):
        write_predictions(io.BytesIO(), [f"c{i}" for i in range(5)], (5, 8, 8), [probs[:2], probs[2:4]])
    with pytest.raises(ValueError, match="does not fit 5 x 8 x 8"):
        write_predictions(io.BytesIO(), [f"c{i}" for i in range(5)], (5, 8, 8), [probs, probs[:1]])


class _NaNAfter(nn.Module):
    """Returns finite logits for the first ``good`` images it sees, NaN afterwards."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.w, self.seen, self.good = nn.Parameter(torch.zeros(1)), 0, good

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x[:, :1] * 0 + self.w
        keep = torch.arange(self.seen, self.seen + len(x)) < self.good
        self.seen += len(x)
        return torch.where(keep[:, None, None, None], out, torch.full_like(out, float("nan")))


def test_non_finite_predictions_raise_with_counts_over_the_split_and_write_nothing(tmp_path: Path) -> None:
    data = _data(tmp_path)
    _, parts = _parts(data)
    path = tmp_path / "job.pred.npz"
    with pytest.raises(NonFinitePrediction, match=r"\b2048 non-finite .* in 2 of 5 images"):
        predict_and_score(_NaNAfter(good=3), parts, 2, "cpu", path)
    assert not path.exists() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_positional_reads_give_the_same_rows_as_the_mapping(tmp_path: Path) -> None:
    data = _data(tmp_path)
    rows = np.array([13, 0, 5, 5, -1, 7])
    for array in (data.pixels, data.masks, data.lo):
        got = take_rows(array, rows)
        assert got.dtype == array.dtype and got.shape == (len(rows), *array.shape[1:])
        assert np.array_equal(got, np.asarray(array)[rows])
        assert np.array_equal(
            take_rows(array[2:], rows[1:4]), np.asarray(array)[2:][rows[1:4]]
        )  # a slice: plain indexing
    assert take_rows(data.pixels, np.array([], np.int64)).shape == (0, *data.pixels.shape[1:])
    with pytest.raises(IndexError, match="out of bounds"):
        take_rows(data.pixels, np.array([14]))
    # what a batch sees: normalised images and masks, gathered by index, equal to the whole-set copy
    x, y = tensors(data, list(data.case_ids))
    pick = torch.tensor([4, 0, 13, 4])
    assert torch.equal(x[pick], torch.from_numpy(np.asarray(data.images)[pick.numpy()]))
    assert torch.equal(y[pick], torch.from_numpy(np.asarray(data.masks)[pick.numpy()][:, None].astype(np.float32)))


def _mapped_kib(path: str | Path) -> int:
    """Resident KiB of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's first line
            inside = head[-1] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_positional_reads_leave_the_mapped_cache_out_of_resident_memory(tmp_path: Path) -> None:
    data = _data(tmp_path, n=40)  # 40 x 3 x 32 x 32 bytes: 30 pages
    x, y = tensors(data, list(data.case_ids))
    for i in range(0, len(x), 4):
        x[i : i + 4], y[i : i + 4]
    assert _mapped_kib(data.pixels.filename) == 0 and _mapped_kib(data.masks.filename) == 0
    np.asarray(data.pixels)[::2].sum()  # reading through the mapping makes its pages resident
    assert _mapped_kib(data.pixels.filename) > 0
