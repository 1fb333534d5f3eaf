"""Seeds as a factor nested within the fold model: tables, the fold-level test and the rank bootstrap."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results
from scipy import stats as sps

from bench.analysis import ranking, seeds, stats, tables


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_results(
        datasets=("isic2018", "lgg_mri"),
        archs=("unet", "mildnet"),
        n_cases=25,
        seeds=(0, 1, 2),
        quality={"unet": 0.72, "mildnet": 0.80},
    )


def test_table5_gives_fold_std_and_seed_sd(df: pd.DataFrame) -> None:
    table = tables.table5(df, metrics=("dice",))
    row = table[(table["dataset"] == "isic2018") & (table["arch"] == "unet")].iloc[0]
    test = df[(df["split"] == "test") & (df["protocol"] == "holdout") & (df["dataset"] == "isic2018")]
    models = test[test["arch"] == "unet"].groupby(["fold", "seed"])["dice"].mean()
    per_fold = models.groupby(level="fold")
    assert row["dice_mean"] == pytest.approx(models.mean())
    assert row["dice_std"] == pytest.approx(np.std(per_fold.mean().to_numpy(), ddof=1))  # over 5 fold means
    assert row["dice_seed_sd"] == pytest.approx(np.sqrt(per_fold.var(ddof=1).mean()))
    assert row["n_seeds"] == 3 and row["n_models"] == 15
    assert "3 seeds per fold model" in table.attrs["caption"]
    single = tables.table5(df[df["seed"] == 0], metrics=("dice",))
    assert "dice_seed_sd" not in single.columns
    assert seeds.ONE_SEED in single.attrs["caption"]


def test_collapse_seeds_averages_metrics_per_fold_model_and_image(df: pd.DataFrame) -> None:
    sel = stats.select(df, dataset="lgg_mri", protocol="cv")
    one = seeds.collapse_seeds(sel)
    assert len(one) * 3 == len(sel) and (one["n_seeds"] == 3).all()
    expected = sel.groupby(["arch", "fold", "case_id"])["iou"].mean()
    got = one.set_index(["arch", "fold", "case_id"])["iou"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_fold_level_test_is_over_folds_with_seeds_averaged(tmp_path: Path) -> None:
    """Recomputed from the exported rows: per fold, the mean over its seeds of each seed model's mean."""
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), protocols=("cv",), n_cases=30, seeds=(0, 1, 2))
    df.to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv")
    models = rows.groupby(["arch", "fold", "seed"])["iou"].mean()
    folds = models.groupby(["arch", "fold"]).mean().unstack("arch")
    d = (folds["mildnet"] - folds["unet"]).to_numpy()
    n_test = rows.drop_duplicates(["fold", "case_id"]).groupby("fold").size().to_numpy()
    ratio = float(np.mean(n_test / (rows["case_id"].nunique() - n_test)))
    t = d.mean() / np.sqrt((1 / len(d) + ratio) * d.var(ddof=1))
    out = stats.fold_level_test(df, dataset="isic2018", metric="iou", against="unet").iloc[0]
    assert out["n_folds"] == 5  # not 15: seeds are repeated measurements of one fold model
    assert out["statistic"] == pytest.approx(t, rel=1e-9)  # no fitted sizes recorded: whole training folds
    assert out["p_raw"] == pytest.approx(2 * sps.t.sf(abs(t), len(d) - 1), rel=1e-9)
    assert "seeds" in out["unit"]


def test_unit_level_test_pairs_units_averaged_over_folds_and_seeds(tmp_path: Path, df: pd.DataFrame) -> None:
    df.to_csv(tmp_path / "rows.csv", index=False)
    rows = pd.read_csv(tmp_path / "rows.csv")
    test = rows[(rows["dataset"] == "lgg_mri") & (rows["protocol"] == "holdout") & (rows["split"] == "test")]
    per_image = test.groupby(["arch", "case_id", "group"])["iou"].mean()  # over 5 folds x 3 seeds
    per_unit = per_image.groupby(["arch", "group"]).mean().unstack("arch")
    expected = sps.ttest_rel(per_unit["mildnet"], per_unit["unet"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few units: said elsewhere
        out = stats.paired_test(df, dataset="lgg_mri", against="unet", protocol="holdout").iloc[0]
    assert out["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
    assert out["p_raw"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert "averaged over 3 seeds" in out["unit"]


def test_rank_bootstrap_resamples_units_and_seeds(df: pd.DataFrame) -> None:
    one = ranking.rank_table(df[df["seed"] == 0], n_boot=200, seed=4)
    assert one[one["dataset"] != ranking.ALL]["units"].str.contains(seeds.ONE_SEED).all()
    three = ranking.rank_table(df, n_boot=200, seed=4)
    assert three[three["dataset"] != ranking.ALL]["units"].str.contains("3 seeds per architecture resampled").all()
    pd.testing.assert_frame_equal(three, ranking.rank_table(df, n_boot=200, seed=4))


def test_bootstrap_means_with_identical_seeds_equals_the_unit_bootstrap(df: pd.DataFrame) -> None:
    one = df[df["seed"] == 0]
    twins = pd.concat([one.assign(seed=s) for s in (0, 1, 2)], ignore_index=True)
    values, _ = ranking.unit_table(one, "isic2018", metric="dice", protocol="holdout", unit="group")
    idx = np.random.default_rng(0).integers(0, len(values), size=(50, len(values)))
    sel = twins[(twins["dataset"] == "isic2018") & (twins["protocol"] == "holdout")]

    def unit_values(rows: pd.DataFrame) -> pd.DataFrame:
        return ranking.unit_table(rows, "isic2018", metric="dice", protocol="holdout", unit="group")[0]

    got = seeds.bootstrap_means(sel, values, idx, np.random.default_rng(1), unit_values)
    np.testing.assert_allclose(got, values.to_numpy()[idx].mean(axis=1))


def test_spread_and_notes() -> None:
    cell = pd.DataFrame(
        {"fold": [0, 0, 1, 1], "seed": [0, 1, 0, 1], "dice": [0.5, 0.7, 0.8, 0.8]}
    )  # fold means 0.6, 0.8; seed variances 0.02, 0
    out = seeds.spread(cell, ["dice"])
    assert out["dice_std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert out["dice_seed_sd"] == pytest.approx(np.sqrt(0.01))
    assert out["n_seeds"] == 2
    assert seeds.seed_note(cell.assign(dataset="d", arch="a", protocol="cv")).startswith("2 seeds per fold model")
    assert seeds.seed_note(cell[cell["seed"] == 0]).startswith(seeds.ONE_SEED)
