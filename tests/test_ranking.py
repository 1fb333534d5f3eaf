"""Bootstrap rank uncertainty: seeded, over the independent units, a dominant arch ranks first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results

from bench.analysis import ranking
from bench.errors import NoResults
from bench.report import report


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return make_results(
        datasets=("isic2018", "lgg_mri"),
        archs=("unet", "unetpp", "mildnet"),
        n_cases=40,
        quality={"unet": 0.70, "unetpp": 0.71, "mildnet": 0.90},
    )


def test_reproducible_under_its_seed(df: pd.DataFrame) -> None:
    a = ranking.rank_table(df, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(a, ranking.rank_table(df, n_boot=300, seed=7))
    b = ranking.rank_table(df, n_boot=300, seed=8)
    assert not np.allclose(a["mean_rank"], b["mean_rank"])  # another seed, other resamples


def test_dominant_architecture_ranks_first_with_probability_near_one(df: pd.DataFrame) -> None:
    table = ranking.rank_table(df, n_boot=500, seed=0)
    assert set(table["dataset"]) == {"isic2018", "lgg_mri", ranking.ALL}
    for ds, g in table[table["kind"] == "model"].groupby("dataset"):
        top = g.iloc[0]
        assert top["arch"] == "mildnet" and top["rank"] == 1 and top["p_first"] > 0.99, ds
        assert top["rank_low"] == top["rank_high"] == 1
        close = g[g["arch"] != "mildnet"]  # unet and unetpp: nearly equal, so their ranks are uncertain
        assert (close["p_first"] < 0.01).all() and (close["rank_low"] == 2).all()
    cv = ranking.rank_table(df, n_boot=50, protocol="cv")
    assert cv[cv["dataset"] == "lgg_mri"]["units"].iloc[0].startswith("10 patients")  # patients, not slices
    image = ranking.rank_table(df, n_boot=50, protocol="cv", unit="image")
    assert image[image["dataset"] == "lgg_mri"]["units"].iloc[0].startswith("40 out-of-fold slices")


def test_bootstrap_resamples_units_as_documented() -> None:
    """One dataset, two archs: P(first) equals the share of unit resamples whose mean favours the arch."""
    df = make_results(
        datasets=("isic2018",),
        archs=("unet", "mildnet"),
        n_cases=30,
        protocols=("holdout",),
        quality={"unet": 0.80, "mildnet": 0.80},
    )
    table = ranking.rank_table(df, n_boot=400, seed=3)
    values, _ = ranking.unit_table(df, "isic2018", metric="dice", protocol="holdout", unit="group")
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(values), size=(400, len(values)))
    boot = values[["mildnet", "unet"]].to_numpy()[idx].mean(axis=1)
    expected = float((boot[:, 0] >= boot[:, 1]).mean())  # ties share the best rank
    assert 0 < expected < 1  # close archs: a genuinely uncertain ranking
    assert table.set_index("arch").loc["mildnet", "p_first"] == pytest.approx(expected)


def test_rank_table_in_the_report(df: pd.DataFrame) -> None:
    md = report.report_table(df, "ranks", "md")
    assert "P(first)" in md and "bootstrap" in md and "all datasets" in md


def test_ranks_show_the_floor_and_warn_on_few_units() -> None:
    """A floor row at the rank a trivial prediction would take; <= 5 units: a warning in the table."""
    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=12, protocols=("holdout",))
    with pytest.warns(UserWarning, match="ranks over"):
        table = ranking.rank_table(df, n_boot=50)
    floor = table[table["kind"] == "floor"].iloc[0]
    models = table[table["kind"] == "model"]
    assert floor["arch"] in ("all_foreground", "all_background") and floor["rank"] == 3  # below both models
    assert (models["warning"].str.contains("units: intervals say little")).all()
    assert "Few units" in table.attrs["caption"]


def test_consensus_rank_refuses_datasets_trained_differently() -> None:
    df = make_results(datasets=("isic2018", "lgg_mri"), archs=("unet", "mildnet"), protocols=("holdout",))
    df["epochs"] = np.where(df["dataset"] == "lgg_mri", 3, 2)
    with pytest.raises(NoResults, match=r"epochs \(isic2018: 2; lgg_mri: 3"):
        ranking.rank_table(df, n_boot=10)
    assert len(ranking.rank_table(df, n_boot=10, datasets=["lgg_mri"]))  # one dataset: nothing to compare
