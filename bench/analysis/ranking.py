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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from bench.analysis.stats import canonical_dataset, default_split, per_image
from bench.errors import InvalidInput, NoResults
from bench.metrics import higher_is_better

ALL = "all datasets"
COLUMNS = ["dataset", "arch", "rank", "mean_rank", "rank_low", "rank_high", "p_first", "units", "n_boot"]


def _rank(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Competition ranks ("1224") along the last axis; 1 = best."""
    return rankdata(-means if higher_is_better else means, axis=-1, method="min")


def unit_table(df: pd.DataFrame, dataset: str, *, metric: str, protocol: str, unit: str) -> tuple[pd.DataFrame, str]:
    """(units x archs values with no missing value, unit text): the units every arch scored."""
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, unit=unit)
    values = data.unit_values().dropna()
    if values.empty:
        raise NoResults(f"{dataset}: no unit scored by every architecture")
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
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray, str]] = {}
    for ds in names:
        values, text = unit_table(df, ds, metric=metric, protocol=protocol, unit=unit)
        x = values.to_numpy(float)
        idx = rng.integers(0, len(x), size=(n_boot, len(x)))
        boot = _rank(x[idx].mean(axis=1), higher)
        means = values.mean().to_frame().T
        out[ds] = (means, _rank(means.to_numpy(float)[0], higher), boot, f"{len(x)} {text}")
    if len(names) > 1:
        out[ALL] = _consensus(out, names)
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
    rows = []
    for ds, (means, observed, boot, text) in rank_distributions(
        df, metric=metric, protocol=protocol, unit=unit, n_boot=n_boot, seed=seed, datasets=datasets
    ).items():
        archs = list(means.columns)
        low, high = np.percentile(boot, [2.5, 97.5], axis=0)
        for j, arch in enumerate(archs):
            rows.append(
                {
                    "dataset": ds,
                    "arch": arch,
                    "rank": int(observed[j]),
                    "mean_rank": float(boot[:, j].mean()),
                    "rank_low": float(low[j]),
                    "rank_high": float(high[j]),
                    "p_first": float((boot[:, j] == 1).mean()),
                    "units": text,
                    "n_boot": n_boot,
                }
            )
    out = pd.DataFrame(rows, columns=COLUMNS)
    out = out.assign(_order=out["dataset"].map(_dataset_order)).sort_values(["_order", "mean_rank", "arch"])
    out = out.drop(columns="_order").reset_index(drop=True)
    out.attrs["caption"] = (
        f"Rank uncertainty by mean {metric} ({protocol}): rank = observed rank (1 = best); mean_rank, rank_low, "
        f"rank_high = bootstrap mean and 95% percentile interval over {n_boot} resamples of the independent units "
        f"(units: what was resampled, and how many), "
        f"seed {seed}; p_first = share of resamples ranking first (ties share the best rank). '{ALL}': each "
        "resample ranks the mean rank over the datasets (architectures present on all of them)."
    )
    return out


def _dataset_order(name: str) -> str:
    return "~" if name == ALL else name
