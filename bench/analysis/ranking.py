"""How certain is a ranking of architectures? Bootstrap rank distributions over the independent units.

As challengeR does for challenges: per dataset, the units of analysis (patients, source images,
images: ``bench.analysis.stats.per_image(..., unit=...)``) are resampled with replacement ``n_boot`` times; in
each replicate every architecture's mean over the resampled units is ranked (1 = best; ties share the
best rank, "1224" competition ranking; higher is better for dice/iou, lower for hd/hd95). Across
datasets, each replicate resamples every dataset independently, averages each architecture's ranks
over the datasets and ranks those averages (a consensus rank; only architectures present on every
dataset). Reported per architecture: the observed rank, the bootstrap mean rank, its 95% percentile
interval and the probability of ranking first. Seeded (``numpy.random.default_rng(seed)``): the same
results, seed and ``n_boot`` give the same table.

Beside the ranks: a dataset ranked over ``MIN_UNITS`` (5) units or fewer carries a ``warning`` (its
intervals say little: a bootstrap over 3 units has 10 distinct resamples); each dataset gets a
``kind == "floor"`` row for the better trivial floor (all foreground or all background), at the rank its
mean over the same units would take among the architectures (it takes no part in their ranks). The
consensus across datasets refuses datasets trained with different recipes (``bench.analysis.across``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.analysis.seeds import bootstrap_means, resample_note
from bench.analysis.stats import MIN_UNITS, AnalysisWarning, canonical_dataset, default_split, floor_values, per_image
from bench.analysis.suitability import consensus_datasets
from bench.errors import InvalidInput, NoResults
from bench.metrics import higher_is_better

ALL = "all datasets"
COLUMNS = [
    "dataset",
    "arch",
    "kind",
    "rank",
    "mean_rank",
    "rank_low",
    "rank_high",
    "p_first",
    "units",
    "n_boot",
    "warning",
    "note",
]


def _rank(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Competition ranks ("1224") along the last axis; 1 = best."""
    return rankdata(-means if higher_is_better else means, axis=-1, method="min")


def unit_table(df: pd.DataFrame, dataset: str, *, metric: str, protocol: str, unit: str) -> tuple[pd.DataFrame, str]:
    """(units x archs values with no missing value, unit text): the units every arch scored. The better
    trivial floor's mean over those units is in ``attrs["floor"]`` as (name, value), or absent."""
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, unit=unit)
    values = data.unit_values().dropna()
    if values.empty:
        raise NoResults(f"{dataset}: no unit scored by every architecture")
    floors = {f: float(v.reindex(values.index).mean()) for f, v in floor_values(data, metric).items()}
    if floors:
        pick = max if higher_is_better(metric) else min
        best = pick(floors, key=lambda f: floors[f])
        values.attrs["floor"] = (best, floors[best])
    return values, data.unit


def rank_distributions(
    df: pd.DataFrame,
    *,
    metric: str = "dice",
    protocol: str = "holdout",
    unit: str = "group",
    n_boot: int = 1000,
    seed: int = 0,
    datasets: Sequence[str] | None = None,
) -> dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray, str]]:
    """Per dataset (and ``ALL`` when there are several): (observed means per arch as a one-row frame,
    observed ranks, bootstrap ranks of shape ``n_boot x archs``, unit text)."""
    if n_boot < 1:
        raise InvalidInput(f"n_boot must be >= 1, got {n_boot}")
    higher = higher_is_better(metric)
    split = default_split(protocol)
    names = (
        sorted(canonical_dataset(d) for d in datasets)
        if datasets
        else sorted(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique())
    )
    if not names:
        raise NoResults(f"no {protocol}/{split} results to rank")
    if len(names) > 1:
        from bench.analysis.across import check_across_datasets

        split_rows = df[(df["protocol"] == protocol) & (df["split"] == split) & df["dataset"].isin(names)]
        check_across_datasets(split_rows, "the consensus rank")
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray, str]] = {}
    for ds in names:
        values, text = unit_table(df, ds, metric=metric, protocol=protocol, unit=unit)
        x = values.to_numpy(float)
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        rows = df[(df["dataset"] == ds) & (df["protocol"] == protocol)]  # units and seeds resampled

        def of(r: pd.DataFrame, ds: str = ds) -> pd.DataFrame:
            return unit_table(r, ds, metric=metric, protocol=protocol, unit=unit)[0]

        boot = _rank(bootstrap_means(rows, values, idx, rng, of), higher)
        means = values.mean().to_frame().T
        means.attrs.update(values.attrs, n_units=len(x))
        text += resample_note(df, ds, protocol)
        out[ds] = (means, _rank(means.to_numpy(float)[0], higher), boot, f"{len(x)} {text}")
        if len(x) <= MIN_UNITS:
            warnings.warn(
                f"{ds}: ranks over {len(x)} units (<= {MIN_UNITS}): the bootstrap intervals say little",
                AnalysisWarning,
                stacklevel=2,
            )
    if len(names) > 1:  # only the datasets that can separate the architectures (bench.analysis.suitability)
        kept, left_out = consensus_datasets(df, names, metric, protocol)
        means, observed, boot, text = _consensus(out, kept)
        out[ALL] = (means, observed, boot, text + left_out)
    return out


def _consensus(
    per: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray, str]], names: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, str]:
    common = [a for a in per[names[0]][0].columns if all(a in per[d][0].columns for d in names)]
    if len(common) < 2:
        raise NoResults("fewer than two architectures have results on every dataset: no ranking across datasets")
    pos = {d: [list(per[d][0].columns).index(a) for a in common] for d in names}
    observed = np.mean([per[d][1][pos[d]] for d in names], axis=0)  # observed mean rank over datasets
    boot = np.mean([per[d][2][:, pos[d]] for d in names], axis=0)  # mean rank over datasets per replicate
    means = pd.DataFrame([observed], columns=common)
    return means, _rank(observed, False), _rank(boot, False), f"{len(names)} datasets, resampled independently"


def rank_table(
    df: pd.DataFrame,
    *,
    metric: str = "dice",
    protocol: str = "holdout",
    unit: str = "group",
    n_boot: int = 1000,
    seed: int = 0,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (dataset or ``ALL``, arch) in ``COLUMNS``; caption in ``attrs``."""
    from bench.analysis.learning import flag_text, model_flags

    flags = model_flags(df[(df["protocol"] == protocol) & (df["split"] == default_split(protocol))])
    rows = []
    small = []
    for ds, (means, observed, boot, text) in rank_distributions(
        df, metric=metric, protocol=protocol, unit=unit, n_boot=n_boot, seed=seed, datasets=datasets
    ).items():
        archs = list(means.columns)
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        n_units = means.attrs.get("n_units")
        warning = small_n_warning(n_units)
        if warning:
            small.append(f"{ds} ({n_units})")
        for j, arch in enumerate(archs):
            rows.append(
                {
                    "dataset": ds,
                    "arch": arch,
                    "kind": "model",
                    "rank": int(observed[j]),
                    "mean_rank": float(boot[:, j].mean()),
                    "rank_low": float(low[j]),
                    "rank_high": float(high[j]),
                    "p_first": float((boot[:, j] == 1).mean()),
                    "units": text,
                    "n_boot": n_boot,
                    "warning": warning,
                    "note": flag_text(flags, ds, arch),
                }
            )
        if "floor" in means.attrs:
            rows.append(_floor_row(ds, means, metric, text, n_boot))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out = out.assign(
        _order=out["dataset"].map(_dataset_order), _floor=(out["kind"] == "floor").astype(int)
    ).sort_values(["_order", "_floor", "mean_rank", "arch"])
    out = out.drop(columns=["_order", "_floor"]).reset_index(drop=True)
    out.attrs["caption"] = (
        f"Rank uncertainty by mean {metric} ({protocol}): rank = observed rank (1 = best); mean_rank, rank_low, "
        f"rank_high = bootstrap mean and 95% percentile interval over {n_boot} resamples of the independent units "
        f"(units: what was resampled, and how many), "
        f"seed {seed}; p_first = share of resamples ranking first (ties share the best rank). '{ALL}': each "
        "resample ranks the mean rank over the datasets (architectures present on all of them). Floor rows: the "
        "better trivial prediction over the same units, at the rank its mean would take (not itself ranked)."
        + (
            f" Few units: {', '.join(small)}: with <= {MIN_UNITS} units the intervals say little (warning column)."
            if small
            else ""
        )
    )
    return out


def small_n_warning(n_units: int | None) -> str:
    """The ``warning`` cell of a dataset ranked over ``n_units`` units ("" above ``MIN_UNITS``)."""
    if n_units is None or n_units > MIN_UNITS:
        return ""
    return f"only {n_units} units: intervals say little"


def _floor_row(ds: str, means: pd.DataFrame, metric: str, text: str, n_boot: int) -> dict[str, object]:
    name, value = means.attrs["floor"]
    models = means.to_numpy(float)[0]
    better = int((models > value).sum() if higher_is_better(metric) else (models < value).sum())
    return {
        "dataset": ds,
        "arch": name,
        "kind": "floor",
        "rank": better + 1,
        "mean_rank": np.nan,
        "rank_low": np.nan,
        "rank_high": np.nan,
        "p_first": np.nan,
        "units": text,
        "n_boot": n_boot,
        "warning": f"a trivial prediction would rank {better + 1} of {len(models) + 1}"
        if better < len(models) / 2
        else "",
        "note": "",
    }


def _dataset_order(name: str) -> str:
    return "~" if name == ALL else name
