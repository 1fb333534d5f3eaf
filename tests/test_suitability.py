"""Dataset suitability: the variance ratio recomputed from exported rows, verdicts that follow the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results

from bench.analysis import suitability
from bench.analysis.floors import trivial_scores


def _rows(quality: dict[str, float], noise: float = 0.04, seeds: tuple[int, ...] = (0, 1, 2)) -> pd.DataFrame:
    return make_results(
        datasets=("isic2018",),
        archs=tuple(quality),
        protocols=("holdout",),
        n_cases=30,
        seeds=seeds,
        quality=quality,
        noise=noise,
    )


def test_ratio_recomputed_from_exported_rows(tmp_path: Path) -> None:
    df = _rows({"unet": 0.70, "unetpp": 0.74, "mildnet": 0.86})
    df.to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv")
    test = rows[(rows["protocol"] == "holdout") & (rows["split"] == "test")]
    models = test.groupby(["arch", "fold", "seed"])["dice"].mean()  # each fold model's mean over its images
    means = models.groupby("arch").mean()
    between = float(np.var(means.to_numpy(), ddof=1))
    within = float(np.mean([np.var(g.to_numpy(), ddof=1) for _, g in models.groupby("arch")]))
    row = suitability.suitability_table(df, metrics=("dice",), n_boot=200).iloc[0]
    assert row["ratio"] == pytest.approx(between / within, rel=1e-12)
    assert row["between_var"] == pytest.approx(between, rel=1e-12)
    assert row["n_models"] == 15 and row["n_seeds"] == 3  # 5 folds x 3 seeds per architecture
    images = test.drop_duplicates(["fold", "seed", "case_id"])
    floor = max(float(np.mean(trivial_scores(images, f)["dice"])) for f in ("all_foreground", "all_background"))
    assert row["floor_distance"] == pytest.approx(means.max() - floor, rel=1e-9)
    assert row["best_arch"] == "mildnet"


def test_clear_differences_separate_and_equal_architectures_do_not() -> None:
    apart = suitability.suitability_table(_rows({"unet": 0.55, "mildnet": 0.90}, noise=0.01), n_boot=500)
    assert (apart["verdict"] == suitability.SEPARATES).all(), apart["reason"].tolist()
    assert (apart["ratio_low"] > 1).all()
    same = suitability.suitability_table(_rows({"unet": 0.80, "mildnet": 0.80}, noise=0.05), n_boot=500)
    assert (same["verdict"] == suitability.CANNOT).all()
    assert same["reason"].str.contains("not clearly above").all()


def test_a_model_near_the_trivial_floor_cannot_separate() -> None:
    df = _rows({"unet": 0.02, "mildnet": 0.04}, noise=0.005)  # both far below predicting all foreground
    row = suitability.assess(df, "isic2018", "dice", n_boot=200)
    assert row["verdict"] == suitability.CANNOT
    assert row["floor_distance"] < 0 and "from predicting all foreground" in row["reason"]


def test_one_fold_model_per_architecture_says_the_spread_is_not_measured() -> None:
    df = _rows({"unet": 0.6, "mildnet": 0.9}, seeds=(0,))
    row = suitability.assess(df[df["fold"] == 0], "isic2018", "dice", n_boot=50)
    assert row["verdict"] == suitability.CANNOT and "one fold model per architecture" in row["reason"]


def test_bootstrap_interval_is_seeded() -> None:
    df = _rows({"unet": 0.70, "mildnet": 0.78})
    models = suitability.fold_model_means(df[df["split"] == "test"], "dice")
    a = suitability.bootstrap_ratio(models, "dice", 300, seed=1)
    assert a == suitability.bootstrap_ratio(models, "dice", 300, seed=1)
    assert a[0] <= a[1]
