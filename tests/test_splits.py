"""Splits: deterministic, group-aware, balanced by cases, the paper's Table 2 sizes, strict validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.datasets.splits import Split, SplitError, SplitParams, load_or_create_split, make_splits, split_file_name


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


@pytest.mark.parametrize(
    "name,n,per,folds,test",
    [
        ("isic2018", 2594, 1, [363] * 4 + [364], 778),
        ("isbi2012", 30, 4, [16] * 4 + [20], 36),
        ("lgg_mri", 1144, 1, [160] * 4 + [161], 343),
        ("glas2015", 165, 11, [253] * 5, 550),
        ("dsb2018", 670, 1, [94] * 4 + [93], 201),
    ],
)
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
    assert set(d) == {"seed", "protocol", "test", "folds", "n_folds", "test_fraction", "inner_fraction", "cases_sha256"}
    assert set(d["folds"][0]) == {"train", "val"} and (d["n_folds"], d["test_fraction"]) == (3, 0.3)
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
    crossing = replace(
        split,
        test=split.test[1:],
        folds=tuple((tr, (*va, split.test[0])) if k == 0 else (tr, va) for k, (tr, va) in enumerate(split.folds)),
    )
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


def test_cv_fold_model_trains_on_four_folds_minus_the_inner_part() -> None:
    """Standard 5-fold CV: fold model k trains on the other 4 folds (80%) minus an inner validation part
    of whole groups (inner_fraction of those folds' cases) that chooses the epoch; fold k is scored."""
    from bench.run.execute import fold_ids

    ids, groups = _cases(100, 2)  # 200 cases in 100 groups
    split = make_splits(ids, groups, "cv", seed=0, inner_fraction=0.1)
    group_of = dict(zip(ids, groups))
    for k in range(5):
        f = fold_ids(split, "cv", k)
        assert len(f["val"]) == 40 and f["test"] == []  # fold k: 20%
        assert len(f["select"]) == 16 and len(f["train"]) == 144  # 0.1 x 160 chooses; 0.9 x 160 = 72% train
        assert len(f["train"]) + len(f["select"]) == 0.8 * len(ids)
        assert set(f["train"]) | set(f["select"]) == set(ids) - set(f["val"])
        assert not {group_of[i] for i in f["select"]} & {group_of[i] for i in f["train"]}  # group-aware
        assert not set(f["select"]) & set(f["val"])
    holdout = make_splits(ids, groups, "holdout", seed=0)
    h = fold_ids(holdout, "holdout", 0)
    assert h["select"] == h["val"] and h["test"] == list(holdout.test) and holdout.select == ()
    with pytest.raises(ValueError, match="a cv job got a holdout split"):
        fold_ids(holdout, "cv", 0)


def test_inner_part_round_trips_and_is_validated(tmp_path: Path) -> None:
    ids, groups = _cases(30, [1, 2, 3] * 10)
    split = make_splits(ids, groups, "cv", seed=4, inner_fraction=0.2)
    d = json.loads(split.to_json())
    assert d["inner_fraction"] == 0.2 and all(set(f) == {"train", "val", "select"} for f in d["folds"])
    split.save(tmp_path / "cv.json")
    assert Split.load(tmp_path / "cv.json") == split
    leaking = replace(split, select=(split.folds[0][1], *split.select[1:]))  # fold 0 choosing on itself
    with pytest.raises(SplitError, match="not within the training folds"):
        leaking.validate(ids, groups)
    old = replace(split, select=())
    with pytest.raises(SplitError, match="no inner validation parts"):
        old.fold_ids(0)


def test_every_split_parameter_is_in_the_identity(tmp_path: Path) -> None:
    ids, groups = _cases(40, 1)
    base = SplitParams("holdout", 5, 5, 0.3, 0.1)
    name = split_file_name("isic2018", "synthetic", base, ids, groups)
    for changed in (
        replace(base, test_fraction=0.5),
        replace(base, seed=6),
        replace(base, n_folds=4),
        replace(base, inner_fraction=0.2),
        replace(base, protocol="cv"),
    ):
        assert split_file_name("isic2018", "synthetic", changed, ids, groups) != name, changed
    assert split_file_name("isic2018", "synthetic", base, ids[:-1], groups[:-1]) != name
    assert split_file_name("isic2018", "synthetic", base, ids, ["g"] * 40) != name  # other groups
    path = tmp_path / name
    first = load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3)
    assert len(first.test) == 12 and json.loads(path.read_text())["test_fraction"] == 0.3
    with pytest.raises(SplitError, match=r"test_fraction 0\.3 \(asked for 0\.5\)"):
        load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.5)
    with pytest.raises(SplitError, match=r"inner_fraction 0\.1 \(asked for 0\.2\)"):
        load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3, 0.2)


def test_changed_test_fraction_makes_a_new_split_file(tmp_path: Path) -> None:
    """--set test_fraction=0.5 gets its own split (it used to reuse the 30% file silently)."""
    from bench.config import load_profile
    from bench.datasets.prepare import prepare
    from bench.datasets.synthetic import SyntheticDataset
    from bench.run.plan import split_for

    data = prepare(SyntheticDataset("dsb2018", n=20, size=32), 32)
    s30, p30 = split_for(data, "holdout", load_profile("check"), tmp_path)
    s50, p50 = split_for(data, "holdout", load_profile("check", {"test_fraction": "0.5"}), tmp_path)
    assert p30 != p50 and p30.exists() and p50.exists()
    assert (len(s30.test), len(s50.test)) == (6, 10) and s30.hash != s50.hash
    assert split_for(data, "holdout", load_profile("check"), tmp_path) == (s30, p30)  # reused


def test_a_split_file_edited_to_move_a_patient_is_refused_naming_the_first_case(tmp_path: Path) -> None:
    """Moving a whole group to another fold keeps the file valid (no group crosses a boundary), but it is
    no longer what its recorded seed and parameters make: refused, naming the first case that differs."""
    ids, groups = _cases(20, 3)
    path = tmp_path / "x.json"
    split = load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3)
    d = json.loads(path.read_text())
    moved = sorted(c for c in d["folds"][0]["val"] if c.startswith(d["folds"][0]["val"][0][:4]))
    d["folds"][0]["val"] = [c for c in d["folds"][0]["val"] if c not in moved]
    d["folds"][1]["val"] = sorted(d["folds"][1]["val"] + moved)
    every = sorted(c for f in d["folds"] for c in f["val"])
    for f in d["folds"]:
        f["train"] = [c for c in every if c not in f["val"]]
    path.write_text(json.dumps(d))
    Split.load(path).validate(ids, groups)  # still a valid split of these cases
    with pytest.raises(SplitError) as caught:
        load_or_create_split(path, ids, groups, "holdout", 5, 5, 0.3)
    message = str(caught.value)
    assert "is not the split its recorded parameters make (holdout, seed 5, 5 folds)" in message
    assert f"case {moved[0]} is in val fold 1 there, in val fold 0 when made again" in message
    assert split.fold_ids(0)["val"] != Split.load(path).fold_ids(0)["val"]
