"""Accuracy against compute: the Pareto figure (``bench report --figure pareto``) and, for the tests table,
each architecture paired with the cheapest one that is not significantly worse (``--against cheapest``).

Per dataset and architecture: the mean Dice over the independent units with its 95% t-interval (as the
bar chart), beside the mean over its jobs of the compute each job recorded in its sidecar
(``bench.analysis.compute``): GMACs of one forward pass, trainable parameters and measured training
seconds per epoch. An architecture is on the Pareto front of one cost when no other is at most as
expensive and at least as accurate, and strictly better in one of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.analysis.learning import figure_note
from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
from bench.analysis.seeds import ONE_SEED, seeds_of
from bench.analysis.stats import default_split, paired_test, per_image, select
from bench.analysis.suitability import better_floor, report_protocol
from bench.errors import InvalidInput, NoResults
from bench.metrics import axis_label
from bench.report.figures import _save, _synthetic_tag, mean_ci

#: cost column -> axis label
COSTS = {
    "gmacs": "GMACs (one forward pass of one image)",
    "parameters": "trainable parameters",
    "train_seconds_per_epoch": "measured training seconds per epoch",
}
COLUMNS = ["dataset", "arch", "mean", "ci_low", "ci_high", "n_units", "jobs", *COSTS, "better_floor", "floor_value"]


def job_costs(df: pd.DataFrame, sidecars: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean compute per (dataset, arch) over the finished jobs whose rows are in ``df`` (``jobs``: how many
    had a ``compute`` record); jobs without one are left out, never guessed."""
    keys = set(df["job_key"].astype(str)) if "job_key" in df else set()
    rows = [
        {"dataset": s["job"]["dataset"], "arch": s["job"]["arch"], **{c: s["compute"].get(c, np.nan) for c in COSTS}}
        for s in sidecars
        if s.get("status") == "ok" and "compute" in s and str(s.get("key")) in keys
    ]
    cost = pd.DataFrame(rows, columns=["dataset", "arch", *COSTS])
    agg = cost.groupby(["dataset", "arch"]).agg(jobs=("gmacs", "size"), **{c: (c, "mean") for c in COSTS})
    return agg.reset_index()


def pareto_points(
    df: pd.DataFrame,
    sidecars: Sequence[dict[str, Any]],
    *,
    metric: str = "dice",
    protocol: str | None = None,
    unit: str = "group",
) -> pd.DataFrame:
    """One row per (dataset, arch): mean ``metric`` with its 95% CI over the units, and the mean costs."""
    protocol = protocol or report_protocol(df)
    split = default_split(protocol)
    names = ordered_datasets(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique())
    if not names:
        raise NoResults(f"no {protocol}/{split} results for the Pareto figure")
    rows = []
    for ds in names:
        values = per_image(df, dataset=ds, metric=metric, protocol=protocol, unit=unit).unit_values()
        for arch in values.columns:
            mean, low, high = mean_ci(values[arch].to_numpy(float))
            n_units = int(values[arch].notna().sum())
            rows.append({"dataset": ds, "arch": arch, "mean": mean, "ci_low": low, "ci_high": high, "n_units": n_units})
    floors = {ds: better_floor(select(df, dataset=ds, protocol=protocol), metric) for ds in names}
    points = pd.DataFrame(rows).merge(job_costs(df, sidecars), on=["dataset", "arch"], how="left")
    points["better_floor"] = points["dataset"].map(lambda d: floors[d][0])
    points["floor_value"] = points["dataset"].map(lambda d: floors[d][1])
    points["jobs"] = points["jobs"].fillna(0).astype(int)
    points.attrs.update(metric=metric, protocol=protocol)
    return points[COLUMNS]


def pareto_front(points: pd.DataFrame, cost: str, higher_better: bool = True) -> pd.Series:
    """True for the rows of one dataset that no other row dominates (cheaper-or-equal and better-or-equal,
    strictly one of them); rows without the cost are never on the front."""
    ok = points[cost].notna() & points["mean"].notna()
    c = points[cost].to_numpy(float)
    m = points["mean"].to_numpy(float) * (1 if higher_better else -1)
    front = []
    for i in range(len(points)):
        if not ok.iloc[i]:
            front.append(False)
            continue
        dominated = ok & (c <= c[i]) & (m >= m[i]) & ((c < c[i]) | (m > m[i]))
        front.append(not bool(dominated.any()))
    return pd.Series(front, index=points.index)


def pareto_figure(points: pd.DataFrame, df: pd.DataFrame) -> Figure:
    """One row of panels per dataset, one panel per cost (log scale), the front joined and filled."""
    names = ordered_datasets(points["dataset"].unique())
    metric, protocol = points.attrs.get("metric", "dice"), points.attrs.get("protocol", "")
    fig = Figure(figsize=(4.2 * len(COSTS), 3.4 * len(names)), layout="constrained")
    for i, ds in enumerate(names):
        g = points[points["dataset"] == ds].reset_index(drop=True)
        for j, (cost, label) in enumerate(COSTS.items()):
            ax = fig.add_subplot(len(names), len(COSTS), i * len(COSTS) + j + 1)
            _panel(ax, g, cost, label, metric)
            ax.set_title(f"{dataset_label(ds)}: {g['n_units'].max()} units", fontsize=8)
    seeds = seeds_of(df)
    seed_text = ONE_SEED if len(seeds) <= 1 else f"{len(seeds)} seeds per fold model"
    fig.suptitle(
        f"{axis_label(metric)} (mean over independent units, 95% t-CI) against compute, {protocol}; filled and "
        f"joined: Pareto front (no other model cheaper and better); dashed: the better trivial floor; {seed_text}"
        f"{_synthetic_tag(df)}{figure_note(df[df['protocol'] == protocol], 160)}",
        fontsize=9,
        wrap=True,
    )
    return fig


def _panel(ax: Any, g: pd.DataFrame, cost: str, label: str, metric: str) -> None:
    front = pareto_front(g, cost)
    have = g[g[cost].notna()]
    if have.empty:
        ax.text(0.5, 0.5, f"no {cost} recorded", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        return
    err = np.abs(have[["ci_low", "ci_high"]].to_numpy(float).T - have["mean"].to_numpy(float))
    ax.errorbar(have[cost], have["mean"], yerr=np.nan_to_num(err), fmt="none", ecolor="grey", capsize=2, lw=0.8)
    on, off = have[front[have.index]], have[~front[have.index]]
    ax.scatter(off[cost], off["mean"], facecolors="white", edgecolors="#1f77b4", zorder=3, label="dominated")
    ax.scatter(on[cost], on["mean"], color="#d62728", zorder=4, label="Pareto front")
    line = on.sort_values(cost)
    ax.plot(line[cost], line["mean"], color="#d62728", lw=1, zorder=2)
    for r in have.itertuples():
        ax.annotate(
            arch_label(r.arch), (getattr(r, cost), r.mean), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    if g["floor_value"].notna().any():
        floor = g["better_floor"].iloc[0].replace("_", " ")
        ax.axhline(g["floor_value"].iloc[0], color="grey", ls="--", lw=0.8, label=f"{floor} (trivial)")
    if (have[cost] > 0).all():
        ax.set_xscale("log")
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel(label, fontsize=8)
    ax.set_ylabel(axis_label(metric), fontsize=8)
    ax.legend(fontsize=6, loc="best")


def pareto(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    sidecars: Sequence[dict[str, Any]] = (),
    metric: str = "dice",
    protocol: str | None = None,
    unit: str = "group",
) -> list[Path]:
    """Save ``pareto.png/.pdf`` and ``pareto.csv`` (the plotted points, ``on_front_<cost>`` per cost)."""
    if not sidecars:
        raise NoResults("the Pareto figure needs the job sidecars (their compute records)")
    points = pareto_points(df, sidecars, metric=metric, protocol=protocol, unit=unit)
    if points["jobs"].sum() == 0:
        raise NoResults("no job of these results recorded its compute (results older than the compute record)")
    out_dir = Path(out_dir)
    paths = _save(pareto_figure(points, df), out_dir, "pareto")
    table = points.copy()
    for cost in COSTS:
        table[f"on_front_{cost}"] = False
        for _, g in table.groupby("dataset", sort=False):
            table.loc[g.index, f"on_front_{cost}"] = pareto_front(g, cost)
    table.to_csv(out_dir / "pareto.csv", index=False)
    return [*paths, out_dir / "pareto.csv"]


# ----------------------------------------------------------------------------- --against cheapest


def cheapest_not_worse(
    df: pd.DataFrame,
    sidecars: Sequence[dict[str, Any]],
    *,
    metric: str = "iou",
    protocol: str | None = None,
    unit: str = "group",
    cost: str = "gmacs",
    alpha: float = 0.05,
    test: str = "t",
) -> pd.DataFrame:
    """Per dataset and architecture: the cheapest architecture (by ``cost``) that is not significantly worse.

    Each architecture is tested (paired, ``bench.analysis.stats.paired_test``, Holm across its cheaper
    candidates) against every cheaper one; its partner is the cheapest candidate whose difference is not
    significant or favours the candidate, else itself ("none cheaper is as good")."""
    if cost not in COSTS:
        raise InvalidInput(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    from bench.analysis.stats import resolve_protocol

    protocol = protocol or resolve_protocol(df, None, None)[0]
    costs = job_costs(df, sidecars).set_index(["dataset", "arch"])[cost]
    split = default_split(protocol)
    rows = []
    for ds in ordered_datasets(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique()):
        archs = ordered_archs(df.loc[(df["dataset"] == ds) & (df["protocol"] == protocol), "arch"].unique())
        missing = [a for a in archs if pd.isna(costs.get((ds, a), np.nan))]
        if missing:
            raise NoResults(
                f"{ds}: no {cost} recorded for {', '.join(missing)} (results older than the compute record)"
            )
        for arch in archs:
            rows.append(_partner(df, ds, arch, archs, costs, cost, metric, protocol, unit, alpha, test))
    out = pd.DataFrame(rows)
    out.attrs["caption"] = (
        f"Each model beside the cheapest model (by {COSTS[cost]}) that is not significantly worse in {metric} "
        f"({protocol}; paired {test}-test over the independent units, Holm across each model's cheaper candidates, "
        f"alpha {alpha:g}). mean_diff = model - partner with its 95% CI; partner = the model itself when every "
        "cheaper one is significantly worse."
    )
    return out


def _partner(
    df: pd.DataFrame,
    ds: str,
    arch: str,
    archs: list[str],
    costs: pd.Series,
    cost: str,
    metric: str,
    protocol: str,
    unit: str,
    alpha: float,
    test: str,
) -> dict[str, Any]:
    own = float(costs[(ds, arch)])
    cheaper = sorted((a for a in archs if float(costs[(ds, a)]) < own), key=lambda a: float(costs[(ds, a)]))
    row: dict[str, Any] = {"dataset": ds, "arch": arch, cost: own, "partner": arch, f"partner_{cost}": own}
    row.update(mean_diff=np.nan, ci_low=np.nan, ci_high=np.nan, p_adj=np.nan, n_units=np.nan)
    if not cheaper:
        return row
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-n warning is in the tests table itself
        res = paired_test(
            df,
            dataset=ds,
            metric=metric,
            reference=arch,
            against=cheaper,
            protocol=protocol,
            unit=unit,
            alpha=alpha,
            test=test,
        )
    from bench.metrics import higher_is_better

    sign = 1 if higher_is_better(metric) else -1
    for r in res.set_index("other").loc[cheaper].reset_index().itertuples():
        worse = bool(r.significant) and sign * r.mean_diff > 0
        if not worse:
            row.update(partner=r.other, **{f"partner_{cost}": float(costs[(ds, r.other)])})
            row.update(mean_diff=r.mean_diff, ci_low=r.ci_low, ci_high=r.ci_high, p_adj=r.p_adj, n_units=r.n)
            break
    return row
