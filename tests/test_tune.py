"""bench tune: a grid scored on validation folds only, fair by default, and bench run --tuned."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from bench.cli import main
from bench.config import load_profile
from bench.datasets.splits import Split
from bench.models.tune import (
    Grid,
    best_points,
    best_table,
    parse_grid,
    point_label,
    tuned_jobs,
    tuning_jobs,
    write_profile,
)
from bench.results import store

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3"]
ONE_FOLD = ["--folds", "0", "--jobs", "1"]


def tune(results: Path, name: str, grid: str, archs: str, *extra: str) -> int:
    """``bench tune`` on the synthetic DSB stand-in at the tiny budget; returns the exit status."""
    args = ["tune", "--name", name, "--grid", grid, "--arch", archs, "--dataset", "dsb2018"]
    return main([*args, "--results", str(results), "--quiet", *TINY, *extra])


def tuned_dry_run(results: Path, arch: str, *extra: str) -> int:
    """``bench run --tuned two --dry-run`` of ``arch`` on the DSB stand-in; returns the exit status."""
    args = ["run", "--tuned", "two", "--arch", arch, "--dataset", "dsb2018", *extra]
    return main([*args, "--results", str(results), "--dry-run"])


def test_grid_from_pairs_and_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("lr: [0.001, 0.0001]\nbatch_size: [2, 4]\n")
    grid = parse_grid(["batch_size=8"], path)
    assert grid.points() == [{"lr": 0.001, "batch_size": 8}, {"lr": 0.0001, "batch_size": 8}]
    assert parse_grid(["lr=0.1,0.01", "beta1=0.9,0.5"]).points()[1] == {"lr": 0.1, "beta1": 0.5}


@pytest.mark.parametrize(
    "pairs,match",
    [
        (["test_fraction=0.2,0.3"], "cannot be tuned"),
        (["optimiser=sgd"], "unknown setting"),
        (["lr=0.1,0.1"], "repeats a value"),
        (["lr"], "key=v1,v2"),
        ([], "an empty grid"),
    ],
)
def test_bad_grids_name_the_key(pairs: list[str], match: str) -> None:
    with pytest.raises((ValueError, KeyError), match=match):
        parse_grid(pairs)


def scores_fixture() -> tuple[pd.DataFrame, Grid]:
    grid = Grid((("lr", (0.01, 0.001, 0.0001)),))
    rows = [
        ("unet", 0, 0.60),
        ("unet", 1, 0.70),
        ("unet", 2, 0.70),
        ("mildnet", 0, 0.80),
        ("mildnet", 1, 0.75),
        ("mildnet", 2, 0.50),
    ]
    scores = pd.DataFrame(
        [
            {
                "dataset": "isic2018",
                "arch": a,
                "point": f"lr={grid.values[0][1][i]}",
                "point_index": i,
                "score": s,
                "iou": s - 0.1,
                "n_models": 2,
                "n_images": 10,
            }
            for a, i, s in rows
        ]
    )
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
    assert tune(results, "two", "lr=0.001,0.05", "unet,mildnet", *ONE_FOLD) == 0
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
        bench_split = Split.load(
            next(p for p in (out / "splits").glob("*.json") if not p.name.endswith(".tuning.json"))
        )
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
    assert tuned_dry_run(results, "unet", "--folds", "0") == 0
    assert "1 jobs" in capsys.readouterr().out
    assert tuned_dry_run(results, "unetpp") == 2
    assert "no choice for dsb2018/unetpp" in capsys.readouterr().err


def test_arch_keys_in_the_grid(tmp_path: Path) -> None:
    grid = parse_grid(["arch.dilations=1-3-5,1-2-4", "arch.levels=1,2"])
    assert grid.points()[1] == {"arch.dilations": (1, 3, 5), "arch.levels": 2}
    assert grid.to_dict() == {"arch.dilations": [[1, 3, 5], [1, 2, 4]], "arch.levels": [1, 2]}
    path = tmp_path / "grid.yaml"
    path.write_text(
        "arch.dilations: [[1, 2, 6], [2, 4, 8]]\noptimizer: [adam, sgd, rmsprop]\nscheduler: [plateau, cosine]\n"
    )
    from_file = parse_grid([], path)
    assert from_file.points()[0] == {"arch.dilations": (1, 2, 6), "optimizer": "adam", "scheduler": "plateau"}
    assert len(from_file.points()) == 12
    assert point_label(grid.points()[0]) == "arch.dilations=1-3-5, arch.levels=1"


@pytest.mark.parametrize(
    "pairs,archs,reference,match",
    [
        (
            ["arch.dilations=1-3-5,1-2-4"],
            ["mildnet", "unet"],
            None,
            r"grid key 'arch.dilations': not a constructor argument of unet .*--paper-tuning",
        ),
        (
            ["arch.levels=1,2"],
            ["mildnet", "resdunet", "unetpp"],
            None,
            "not a constructor argument of resdunet, unetpp",
        ),
        (["arch.dilations=1-3-5,1-2-4"], ["mildnet"], "unet", "not a constructor argument of unet"),
        (["arch.mlr_skips=true,false"], ["mildnet"], None, "not a constructor argument of mildnet"),
        (["arch.levels=0,1"], ["mildnet"], None, "arch.levels=0 is refused by mildnet: MLDRBlock needs levels >= 1"),
        (
            ["arch.dilations=3,1-2-4"],
            ["mildnet"],
            None,
            "arch.dilations=3 for mildnet: expected integers joined by '-'",
        ),
        (["arch.mlr_levels=1,2"], ["mildnet", "mildnet_no_mlr"], None, "has no effect without MLR skips"),
        (["arch.dilations=1-3-5"], ["smp:Unet:resnet18"], None, "not a constructor argument of smp:Unet:resnet18"),
    ],
)
def test_an_arch_key_an_architecture_does_not_take_is_refused(
    tmp_path: Path, pairs: list[str], archs: list[str], reference: str | None, match: str
) -> None:
    """Refused before anything is planned or trained (no data is prepared, no job folder made)."""
    with pytest.raises(ValueError, match=match):
        tuning_jobs(parse_grid(pairs), load_profile("quick"), archs, ["dsb2018"], tmp_path, "x", reference=reference)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("pair", ["arch.width=4,8", "arch.in_channels=1", "arch.=1", "arch.levels=two"])
def test_arch_keys_the_harness_sets_or_cannot_read(pair: str) -> None:
    with pytest.raises(ValueError, match=r"set by the harness|name the constructor argument|cannot read 'two'"):
        parse_grid([pair])


def test_the_cli_refuses_an_arch_key_that_not_every_architecture_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert tune(tmp_path / "r", "d", "arch.dilations=1-3-5,1-2-4", "mildnet,unet,unetpp") == 2
    err = capsys.readouterr().err
    assert "not a constructor argument of unet, unetpp" in err and "Traceback" not in err


def test_paper_tuning_passes_arch_values_only_to_the_references_own_class(tmp_path: Path) -> None:
    grid = Grid((("lr", (0.01, 0.001)), ("arch.dilations", ((1, 3, 5), (1, 2, 4)))))
    labels = [point_label(p) for p in grid.points()]
    scores = pd.DataFrame(
        [
            {
                "dataset": "dsb2018",
                "arch": "mildnet",
                "point": label,
                "point_index": i,
                "score": s,
                "iou": s,
                "n_models": 1,
                "n_images": 5,
            }
            for i, (label, s) in enumerate(zip(labels, (0.5, 0.9, 0.6, 0.7)))
        ]
    )
    archs = ["unet", "mildnet_no_mlr", "resdunet", "mildnet"]
    best = best_points(scores, grid)
    assert best["dsb2018"]["mildnet"] == {"lr": 0.01, "arch.dilations": (1, 2, 4)}
    table = best_table(scores, grid, reference="mildnet", archs=archs).set_index("arch")
    assert table.loc["mildnet_no_mlr", "best"] == "lr=0.01, arch.dilations=1-2-4"
    assert table.loc["unet", "best"] == table.loc["resdunet", "best"] == "lr=0.01"  # ResDUNet's rates mean other things
    assert "same constructor" in table.attrs["caption"]
    path = write_profile(tmp_path / "p.yaml", "p", "quick", grid, best, "mildnet", archs)
    chosen = yaml.safe_load(path.read_text())["chosen"]["dsb2018"]
    assert chosen["mildnet"] == chosen["mildnet_no_mlr"] == {"lr": 0.01, "arch.dilations": [1, 2, 4]}
    assert chosen["unet"] == chosen["resdunet"] == {"lr": 0.01}


@pytest.mark.slow
@pytest.mark.parametrize("key, values", [("optimizer", ("adam", "sgd")), ("arch.dilations", ((1, 3, 5), (1, 2, 4)))])
def test_two_point_grid_over_optimizer_and_over_mildnet_dilations(
    tmp_path: Path, key: str, values: tuple, capsys: pytest.CaptureFixture
) -> None:
    """Both points trained and scored on the validation fold only; the better chosen; bench run --tuned
    rebuilds the chosen point (training setting or constructor argument) in its jobs."""
    results = tmp_path / "results"
    text = ",".join("-".join(map(str, v)) if isinstance(v, tuple) else v for v in values)
    assert tune(results, "two", f"{key}={text}", "mildnet", *ONE_FOLD) == 0
    out = results / "tuning" / "two"
    sides = [s for s in store.sidecars(out) if s["status"] == "ok"]

    def point(job: dict) -> object:
        return job["train"][key] if key == "optimizer" else tuple(json.loads(job["arch_kwargs"])["dilations"])

    assert sorted(map(point, (s["job"] for s in sides)), key=str) == sorted(values, key=str)
    rows = store.load_all(out)
    assert set(rows["split"]) == {"val"} and rows["job_key"].nunique() == 2
    for side in sides:  # never the test set; the constructor argument reached the network
        split = Split.load(Path(side["job"]["split_path"]))
        assert split.test == ()
        with np.load(Path(side["_path"]).with_suffix(".pred.npz")) as z:
            assert set(z["case_ids"]) == set(split.folds[0][1])
        if key != "optimizer":
            meta = torch.load(Path(side["_path"]).with_suffix(".pt"), weights_only=True)["meta"]
            assert tuple(meta["model_kwargs"]["dilations"]) == point(side["job"])
    dice = rows.groupby("job_key")["dice"].mean()
    by_point = {point(s["job"]): dice[s["key"]] for s in sides}
    better = values[0] if by_point[values[0]] >= by_point[values[1]] else values[1]  # ties: the earlier point
    doc = yaml.safe_load((results / "tuned" / "two.yaml").read_text())
    chosen = doc["chosen"]["dsb2018"]["mildnet"]
    assert (chosen[key] if key == "optimizer" else tuple(chosen[key])) == better
    best_row = pd.read_csv(results / "tuned" / "two.csv")
    assert len(best_row) == 2 and f"{key}=" in best_row["point"].iloc[0]
    assert f"{key}=" in (results / "tuned" / "two.md").read_text().split("Table 3 (tuning)")[1]
    jobs = list(tuned_jobs(results, "two", ["mildnet"], ["dsb2018"], "holdout", {}, (0,), None, None))
    assert len(jobs) == 1
    if key == "optimizer":
        assert jobs[0].train.optimizer == better and jobs[0].arch_kwargs == "{}"
    else:
        assert json.loads(jobs[0].arch_kwargs) == {"dilations": list(better)}
    capsys.readouterr()
    assert tuned_dry_run(results, "mildnet", "--folds", "0") == 0
    assert jobs[0].key[:16] in capsys.readouterr().out


@pytest.mark.slow
def test_a_second_tuning_of_the_same_name_scores_only_its_own_jobs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    for grid in ("lr=0.01", "arch.dilations=1-2-4"):  # the second grid's key is not in the first's jobs
        assert tune(results, "again", grid, "mildnet", *ONE_FOLD) == 0
    assert len(store.sidecars(results / "tuning" / "again")) == 2  # the earlier job is still there
    every = pd.read_csv(results / "tuned" / "again.csv")
    assert list(every["point"]) == ["arch.dilations=1-2-4"] and list(every["n_models"]) == [1]
    chosen = yaml.safe_load((results / "tuned" / "again.yaml").read_text())["chosen"]["dsb2018"]["mildnet"]
    assert chosen == {"arch.dilations": [1, 2, 4]}


@pytest.mark.slow
def test_a_fair_tuning_reaches_table_5_the_tests_and_fig_8(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """2 architectures x 2 learning rates x 2 epochs, then `bench run --tuned` and `bench report --all`: Table 5,
    the paired tests and Fig. 8 come from the tuned jobs, with the tuning in the caption; an untuned run of the
    same architectures beside them (another value of lr, not chosen by the tuning) still refuses."""
    results, two = tmp_path / "results", ["--set", "epochs=2", "--folds", "0,1", "--jobs", "1"]
    assert tune(results, "t", "lr=0.001,0.05", "unet,mildnet", *two) == 0
    doc = yaml.safe_load((results / "tuned" / "t.yaml").read_text())
    assert doc["data"]["root"] is None and set(doc["data"]["datasets"]) == {"dsb2018"}
    assert doc["budget"] == {"folds": [0, 1], "epochs": 2} and doc["command"].startswith("bench tune --name t ")
    run = ["run", "--tuned", "t", "--arch", "unet,mildnet", "--dataset", "dsb2018", "--folds", "0,1"]
    assert main([*run, "--results", str(results), "--jobs", "1", "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["report", "--all", "--results", str(results), "--out", str(out)]) == 0
    caption = "each architecture at its own best of the same grid (tuning t: lr over 0.001, 0.05; 2 folds; 2 epochs"
    for table in ("table5", "tests_holdout"):
        assert caption in (out / "tables" / f"{table}.md").read_text(), table
    assert (out / "figures" / "fig8.png").is_file()
    page = (out / "index.html").read_text()
    assert caption in page and "tables/tuned_t.html" in page
    assert "bench tune --name t " in (out / "index.md").read_text()  # the tuning's command among the commands
    # an untuned run beside the tuned one: two configurations, every comparison refuses until --where picks one
    plain = ["run", "--arch", "unet,mildnet", "--dataset", "dsb2018", "--folds", "0,1", *TINY[:-2]]
    assert (
        main([*plain, "--set", "epochs=2", "--set", "lr=0.0003", "--results", str(results), "--jobs", "1", "--quiet"])
        == 0
    )
    capsys.readouterr()
    assert main(["report", "--table", "5", "--results", str(results)]) == 2
    assert "--where" in capsys.readouterr().err
    assert main(["report", "--table", "5", "--results", str(results), "--where", "profile=tuned-t"]) == 0
    assert caption in capsys.readouterr().out
    assert main(["report", "--all", "--results", str(results), "--out", str(tmp_path / "mixed")]) == 2
    assert "no table, test or figure comparing architectures could be built" in capsys.readouterr().err


def test_a_tuning_on_real_data_follows_up_on_the_same_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`bench tune --data-root DATA` prints a follow-up with --data-root that, run as printed, plans real-data
    jobs; `bench run --tuned` without it exits 2 naming the tuning's data."""
    import shlex

    from native_layouts import make_dsb

    data = tmp_path / "data"
    make_dsb(data / "dsb2018")
    results = tmp_path / "results"
    scoped = ["--set", "dsb2018.n_folds=2", "--data-root", str(data), *ONE_FOLD]
    assert tune(results, "real", "lr=0.001,0.05", "unet", *scoped) == 0
    printed = capsys.readouterr().out
    assert "data: " + str(data) + " (real: dsb2018)" in printed
    follow = shlex.split(printed.split("run it with: ")[1].splitlines()[0])
    assert follow[:3] == ["bench", "run", "--tuned"] and "--data-root" in follow
    assert main([*follow[1:], "--folds", "0", "--dry-run"]) == 0
    assert f"data: {data} (real: dsb2018)" in capsys.readouterr().out
    without = [a for i, a in enumerate(follow[1:]) if a != "--data-root" and follow[1:][i - 1] != "--data-root"]
    assert main([*without, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "was chosen on real data under " + str(data) in err and f"--data-root {data}" in err
