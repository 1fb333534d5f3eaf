"""Accuracy against compute: the Pareto front, the figure and the cheapest model that is not worse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from results_fixture import make_results, make_sidecars

from bench.report import pareto

#: (GMACs, parameters, training seconds per epoch) per architecture
COST = {"unet": (1.0, 100, 2.0), "unetpp": (3.0, 300, 4.0), "mildnet": (9.0, 900, 8.0)}


def _with_compute(df: pd.DataFrame) -> list[dict[str, Any]]:
    sides = make_sidecars(df)
    for s in sides:
        gmacs, params, seconds = COST[s["job"]["arch"]]
        s["compute"] = {"gmacs": gmacs, "parameters": params, "train_seconds_per_epoch": seconds}
    return sides


def test_front_keeps_exactly_the_undominated_models() -> None:
    points = pd.DataFrame(
        {"arch": ["a", "b", "c", "d"], "mean": [0.70, 0.80, 0.75, 0.80], "gmacs": [1.0, 5.0, 6.0, 5.0]}
    )
    assert pareto.pareto_front(points, "gmacs").tolist() == [True, True, False, True]  # b and d tie
    points.loc[3, "gmacs"] = 7.0
    assert pareto.pareto_front(points, "gmacs").tolist() == [True, True, False, False]


def test_figure_and_points(tmp_path: Path) -> None:
    df = make_results(
        datasets=("isic2018",),
        archs=tuple(COST),
        protocols=("holdout",),
        n_cases=30,
        seeds=(0, 1),
        quality={"unet": 0.70, "unetpp": 0.85, "mildnet": 0.80},
    )
    paths = pareto.pareto(df, tmp_path, sidecars=_with_compute(df))
    assert {p.suffix for p in paths} == {".png", ".pdf", ".csv"} and all(p.stat().st_size > 0 for p in paths)
    table = pd.read_csv(tmp_path / "pareto.csv").set_index("arch")
    assert table.loc["unet", "gmacs"] == 1.0 and table.loc["mildnet", "jobs"] == 10  # 5 folds x 2 seeds
    assert table["on_front_gmacs"].to_dict() == {"unet": True, "unetpp": True, "mildnet": False}
    assert (table["ci_low"] < table["mean"]).all() and (table["mean"] < table["ci_high"]).all()
    with pytest.raises(Exception, match="sidecars"):
        pareto.pareto(df, tmp_path, sidecars=[])


def test_cheapest_not_significantly_worse() -> None:
    df = make_results(
        datasets=("isic2018",),
        archs=("unet", "mildnet"),
        protocols=("holdout",),
        n_cases=40,
        quality={"unet": 0.60, "mildnet": 0.85},
    )
    rng = np.random.default_rng(0)
    twin = df[df["arch"] == "mildnet"].copy()  # unetpp: MILDNet's scores plus noise, no systematic difference
    twin["dice"] = twin["dice"] + rng.normal(0, 0.02, len(twin))
    twin = twin.assign(arch="unetpp", job_key=twin["job_key"] + "pp")
    df = pd.concat([df, twin], ignore_index=True)
    out = pareto.cheapest_not_worse(df, _with_compute(df), metric="dice").set_index("arch")
    assert out.loc["mildnet", "partner"] == "unetpp"  # as good, three times cheaper; unet is clearly worse
    assert out.loc["mildnet", "partner_gmacs"] == 3.0 and out.loc["mildnet", "p_adj"] > 0.05
    assert out.loc["unetpp", "partner"] == "unetpp"  # nothing cheaper is as good
    assert out.loc["unet", "partner"] == "unet"  # the cheapest has no cheaper candidate
