"""Splits: deterministic, group-aware, balanced by cases, the paper's Table 2 sizes, strict validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.datasets.splits import Split, SplitError, load_or_create_split, make_splits


def _cases(n_groups: int, per_group: int | list[int]) -> tuple[list[str], list[str]]:
    sizes = per_group if isinstance(per_group, list) else [per_group] * n_groups
    ids, groups = [], []
    for g, k in enumerate(sizes):
        ids += [f"g{g:03d}_{j:02d}" for j in range(k)]
        groups += [f"g{g:03d}"] * k
    return ids, groups


def test_deterministic_and_seeded() -> None:
    ids, groups = _cases(40, 1)
    a = make_splits(ids, groups, "holdout", seed=3)
    assert a == make_splits(list(reversed(ids)), list(reversed(groups)), "holdout", seed=3)
    assert a.hash == make_splits(ids, groups, "holdout", seed=3).hash and len(a.hash) == 16
    assert a.test != make_splits(ids, groups, "holdout", seed=4).test


@pytest.mark.parametrize("name,n,per,folds,test", [
    ("isic2018", 2594, 1, [363] * 4 + [364], 778),
    ("isbi2012", 30, 4, [16] * 4 + [20], 36),
    ("lgg_mri", 1144, 1, [160] * 4 + [161], 343),
    ("glas2015", 165, 11, [253] * 5, 550),
    ("dsb2018", 670, 1, [94] * 4 + [93], 201),
])
def test_paper_table2_sizes(name: str, n: int, per: int, folds: list[int], test: int) -> None:
    ids, groups = _cases(n, per)
    split = make_splits(ids, groups, "holdout", seed=12345)
    assert len(split.test) == test
    assert sorted(len(v) for _, v in split.folds) == sorted(folds)


def test_groups_never_cross_and_folds_balanced_by_cases() -> None:
    ids, groups = _cases(30, [1, 2, 3, 4, 5, 6] * 5)  # LGG-like patients of varying size
    split = make_splits(ids, groups, "holdout", seed=0)
    part = {i: "test" for i in split.test} | {i: k for k, (_, v) in enumerate(split.folds) for i in v}
    for g in set(groups):
        assert len({part[i] for i, gg in zip(ids, groups) if gg == g}) == 1
    sizes = [len(v) for _, v in split.folds]
    assert max(sizes) - min(sizes) <= 6
    for train, val in split.folds:
        assert not set(train) & set(val) and not set(train) & set(split.test)
        assert len(train) + len(val) == len(ids) - len(split.test)


def test_cv_puts_every_id_in_one_val_fold() -> None:
    ids, groups = _cases(23, 2)
    split = make_splits(ids, groups, "cv", seed=1)
    assert split.test == () and len(split.folds) == 5
    vals = [i for _, v in split.folds for i in v]
    assert sorted(vals) == sorted(ids)


def test_json_shape_and_round_trip(tmp_path: Path) -> None:
    ids, groups = _cases(12, 1)
    split = make_splits(ids, groups, "holdout", seed=7, n_folds=3)
    d = json.loads(split.to_json())
    assert set(d) == {"seed", "protocol", "test", "folds"} and set(d["folds"][0]) == {"train", "val"}
    split.save(tmp_path / "s.json")
    loaded = Split.load(tmp_path / "s.json")
    assert loaded == split and loaded.hash == split.hash


def test_missing_fold_is_an_error() -> None:
    ids, groups = _cases(12, 1)
    split = make_splits(ids, groups, "holdout", seed=7)
    assert split.fold(4) == split.folds[4]
    with pytest.raises(IndexError, match=r"folds 0\.\.4"):
        split.fold(5)


def test_validate_names_the_offending_ids() -> None:
    ids, groups = _cases(10, 2)
    split = make_splits(ids, groups, "holdout", seed=0)
    moved = next(i for i in split.folds[0][1] if i.endswith("_00"))
    bad = replace(split, test=(*split.test, moved))
    with pytest.raises(SplitError, match=moved):
        bad.validate(ids, groups)
    with pytest.raises(SplitError, match="missing from the split: extra"):
        split.validate([*ids, "extra"], [*groups, "extra"])
    crossing = replace(split, test=split.test[1:], folds=tuple(
        (tr, (*va, split.test[0])) if k == 0 else (tr, va) for k, (tr, va) in enumerate(split.folds)))
    with pytest.raises(SplitError, match="crosses a boundary"):
        crossing.validate(ids, groups)
    with pytest.raises(SplitError, match="duplicate"):
        make_splits(["a", "a", "b"], ["a", "a", "b"], "cv", 0)


def test_too_few_groups() -> None:
    ids, groups = _cases(4, 5)
    with pytest.raises(SplitError, match="need at least 5 groups"):
        make_splits(ids, groups, "holdout", seed=0)


def test_load_or_create_writes_once_and_refuses_other_ids(tmp_path: Path) -> None:
    ids, groups = _cases(20, 1)
    path = tmp_path / "splits" / "x.json"
    first = load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3)
    text = path.read_text()
    assert load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3) == first
    assert path.read_text() == text
    with pytest.raises(SplitError, match="does not match the current data"):
        load_or_create_split(path, ids[:-1], groups[:-1], "holdout", 5, 5, 0.3)
    with pytest.raises(SplitError, match="seed 5"):
        load_or_create_split(path, ids, groups, "holdout", 6, 5, 0.3)


def test_table2_counts_beside_the_paper() -> None:
    from bench.datasets.prepare import prepare
    from bench.datasets.summary import table2
    from bench.datasets.synthetic import SyntheticDataset

    data = prepare(SyntheticDataset("isbi2012", n=10, size=32), 16)
    holdout = make_splits(data.case_ids, data.groups, "holdout", seed=0)
    cv = make_splits(data.case_ids, data.groups, "cv", seed=0)
    df = table2((data, holdout), (data, cv))
    assert len(df) == 10 and set(df["unit"]) == {"patch"}
    h = df[df["protocol"] == "holdout"]
    assert h["test"].tolist() == [12] * 5 and sorted(h["val"]) == [4, 4, 4, 8, 8]
    assert (h["train"] + h["val"] + h["test"] == 40).all()
    assert h["paper_val"].tolist() == [16, 16, 16, 16, 20] and h["paper_test"].tolist() == [36] * 5
    assert h["paper_train"].tolist() == [68, 68, 68, 68, 64]
    assert df[df["protocol"] == "cv"]["paper_val"].isna().all()
    with pytest.raises(SplitError):
        table2((data, make_splits(data.case_ids[:-4], data.groups[:-4], "cv", seed=0)))
