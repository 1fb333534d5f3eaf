"""bench tune: a grid scored on validation folds only, fair by default, and bench run --tuned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench import store
from bench.cli import main
from bench.datasets.splits import Split
from bench.tune import Grid, best_points, best_table, parse_grid, tuned_jobs

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3"]


def test_grid_from_pairs_and_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("lr: [0.001, 0.0001]\nbatch_size: [2, 4]\n")
    grid = parse_grid(["batch_size=8"], path)
    assert grid.points() == [{"lr": 0.001, "batch_size": 8}, {"lr": 0.0001, "batch_size": 8}]
    assert parse_grid(["lr=0.1,0.01", "beta1=0.9,0.5"]).points()[1] == {"lr": 0.1, "beta1": 0.5}


@pytest.mark.parametrize("pairs,match", [(["test_fraction=0.2,0.3"], "cannot be tuned"),
                                         (["optimiser=sgd"], "unknown setting"),
                                         (["lr=0.1,0.1"], "repeats a value"), (["lr"], "key=v1,v2"),
                                         ([], "an empty grid")])
def test_bad_grids_name_the_key(pairs: list[str], match: str) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        parse_grid(pairs)


def scores_fixture() -> tuple[pd.DataFrame, Grid]:
    grid = Grid((("lr", (0.01, 0.001, 0.0001)),))
    rows = [("unet", 0, 0.60), ("unet", 1, 0.70), ("unet", 2, 0.70), ("mildnet", 0, 0.80), ("mildnet", 1, 0.75),
            ("mildnet", 2, 0.50)]
    scores = pd.DataFrame([{"dataset": "isic2018", "arch": a, "point": f"lr={grid.values[0][1][i]}",
                            "point_index": i, "score": s, "iou": s - 0.1, "n_models": 2, "n_images": 10}
                           for a, i, s in rows])
    return scores, grid


def test_best_point_per_architecture_ties_go_to_the_earlier_point() -> None:
    scores, grid = scores_fixture()
    best = best_points(scores, grid)
    assert best == {"isic2018": {"unet": {"lr": 0.001}, "mildnet": {"lr": 0.01}}}
    table = best_table(scores, grid)
    assert table.set_index("arch").loc["unet", "best"] == "lr=0.001"
    assert set(table["tuned_on"]) == {"itself"} and "fair" in table.attrs["caption"]


def test_paper_tuning_gives_the_references_best_to_everyone() -> None:
    scores, grid = scores_fixture()
    mild = scores[scores["arch"] == "mildnet"]
    table = best_table(mild, grid, reference="mildnet", archs=["unet", "unetpp", "mildnet"])
    assert list(table["arch"]) == ["unet", "unetpp", "mildnet"]
    assert set(table["best"]) == {"lr=0.01"} and set(table["tuned_on"]) == {"mildnet"}
    assert "only mildnet was tuned" in table.attrs["caption"]


@pytest.mark.slow
def test_two_point_grid_on_validation_folds_only(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    results = tmp_path / "results"
    assert main(["tune", "--name", "two", "--grid", "lr=0.001,0.05", "--arch", "unet,mildnet", "--dataset",
                 "dsb2018", "--folds", "0", "--results", str(results), "--jobs", "1", "--quiet", *TINY]) == 0
    out = tmp_path / "results" / "tuning" / "two"
    sides = [s for s in store.sidecars(out) if s["status"] == "ok"]
    points = {(s["job"]["arch"], s["job"]["train"]["lr"]) for s in sides}
    assert points == {(a, lr) for a in ("unet", "mildnet") for lr in (0.001, 0.05)}  # same points for every arch
    assert {s["job"]["train"]["epochs"] for s in sides} == {1}  # same budget
    rows = store.load_all(out)
    assert set(rows["split"]) == {"val"} and len(rows) == 4 * rows["case_id"].nunique()
    for side in sides:  # the test set is never loaded, predicted or scored
        split = Split.load(Path(side["job"]["split_path"]))
        assert split.test == () and side["job"]["split_path"].endswith(".tuning.json")
        bench_split = Split.load(next(p for p in (out / "splits").glob("*.json") if not p.name.endswith(".tuning.json")))
        assert split.folds == bench_split.folds and bench_split.test  # same folds as the benchmark's split
        with np.load(Path(side["_path"]).with_suffix(".pred.npz")) as z:
            assert not set(z["case_ids"]) & set(bench_split.test)
            assert set(z["case_ids"]) == set(split.folds[0][1])
    # picks the better point per architecture, from the validation Dice
    mean = rows.groupby(["arch", "job_key"])["dice"].mean().reset_index()
    lr = {s["key"]: s["job"]["train"]["lr"] for s in sides}
    mean["lr"] = mean["job_key"].map(lr)
    doc = yaml.safe_load((results / "tuned" / "two.yaml").read_text())
    for arch, g in mean.groupby("arch"):
        g = g.sort_values(["dice", "lr"], ascending=[False, False])  # ties: the earlier grid point (0.001)
        assert doc["chosen"]["dsb2018"][arch]["lr"] == g.iloc[0]["lr"]
    assert doc["mode"] == "fair" and doc["grid"] == {"lr": [0.001, 0.05]}
    assert "Table 3 (tuning)" in (results / "tuned" / "two.md").read_text()
    # bench run --tuned: each architecture with its chosen value, on the tuning's budget
    jobs = list(tuned_jobs(results, "two", ["unet", "mildnet"], ["dsb2018"], "holdout", {}, (0,), None, None))
    assert {j.arch: j.train.lr for j in jobs} == {a: doc["chosen"]["dsb2018"][a]["lr"] for a in ("unet", "mildnet")}
    assert {j.train.epochs for j in jobs} == {1} and {j.profile for j in jobs} == {"tuned-two"}
    capsys.readouterr()
    assert main(["run", "--tuned", "two", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--results",
                 str(results), "--dry-run"]) == 0
    assert "1 jobs" in capsys.readouterr().out
    assert main(["run", "--tuned", "two", "--arch", "unetpp", "--dataset", "dsb2018", "--results", str(results),
                 "--dry-run"]) == 2
    assert "no choice for dsb2018/unetpp" in capsys.readouterr().err
