"""Training seeds as a factor nested within the fold model.

``bench run --seeds 0,1,2`` trains every fold model once per seed. A seed changes only the training
randomness (initial weights, batch order, augmentation); the split, the fold and the images stay the
same. So the seeds of one fold are repeated measurements of one fold model, not more fold models:

- **tables**: the mean over every (fold, seed) model; ``<metric>_std`` is the fold std (ddof=1, over
  the folds, of each fold's mean over its seeds) and ``<metric>_seed_sd`` the seed std beside it (the
  square root of the mean, over the folds, of the variance across that fold's seeds, ddof=1);
- **unit-level tests**: a unit's value is its mean over every fold model and seed that scored it
  (``bench.analysis.stats.per_image`` already averages so), paired over the independent units;
- **fold-level test**: the corrected resampled t-test over the folds, each fold's difference being
  the mean over its seeds (``collapse_seeds`` then ``bench.analysis.stats.fold_level_test``);
- **rank bootstrap**: every replicate resamples the units and, per architecture, the seeds
  (``bootstrap_means``).

A folder with one seed says so wherever variability is reported: ``ONE_SEED``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from bench.errors import NoResults

ONE_SEED = "1 seed: training variability not measured"
#: Columns averaged over seeds by ``collapse_seeds``.
METRIC_COLUMNS = ("dice", "iou", "hd", "hd95")
#: What identifies one fold model's score of one image, seeds aside (``collapse_seeds`` groups by these).
IDENTITY = ("dataset", "arch", "protocol", "split", "fold", "case_id", "eval_resolution", "cohort_fingerprint")


def seeds_of(df: pd.DataFrame) -> list[int]:
    """The distinct training seeds in ``df``, sorted."""
    return sorted(int(s) for s in df["seed"].unique()) if len(df) and "seed" in df else []


def seed_note(df: pd.DataFrame) -> str:
    """One sentence for a caption: how many seeds per fold model, and what the spreads mean."""
    seeds = seeds_of(df)
    if len(seeds) <= 1:
        return ONE_SEED + " (± is over fold models only)."
    per_model = df.groupby(["dataset", "arch", "protocol", "fold"])["seed"].nunique()
    counts = f"{per_model.min()}" if per_model.min() == per_model.max() else f"{per_model.min()}-{per_model.max()}"
    return (
        f"{counts} seeds per fold model (seeds {', '.join(map(str, seeds))}): mean over every fold and seed; "
        "± = fold std (over folds of each fold's mean over its seeds); 'seed sd' columns = seed-to-seed std "
        "(root mean over folds of the variance across seeds)."
    )


def count_text(df: pd.DataFrame) -> str:
    """ "3 seeds per fold model" or ``ONE_SEED``: what a figure title or a tests caption says about seeds."""
    seeds = seeds_of(df)
    return ONE_SEED if len(seeds) <= 1 else f"{len(seeds)} seeds per fold model (seeds {', '.join(map(str, seeds))})"


def fold_unit_suffix(sel: pd.DataFrame) -> str:
    """What the fold-level test's unit adds after ``collapse_seeds``: ", each fold the mean over its N seeds"."""
    n = int(sel["n_seeds"].max()) if "n_seeds" in sel and len(sel) else 1
    return f", each fold the mean over its {n} seeds (seeds nested within the fold)" if n > 1 else f"; {ONE_SEED}"


def spread(cell: pd.DataFrame, metrics: Sequence[str]) -> dict[str, float]:
    """Fold std, seed std and seed count of one (dataset, arch) cell of scored rows.

    Keys ``<m>_std`` (std over folds of the seed-mean of each fold), ``<m>_seed_sd`` (NaN with one seed)
    and ``n_seeds`` (the most seeds any fold has)."""
    per_model = cell.groupby(["fold", "seed"])[list(metrics)].mean()
    per_fold = per_model.groupby(level="fold")
    out: dict[str, float] = {"n_seeds": int(per_fold.size().max()) if len(per_model) else 0}
    fold_means = per_fold.mean()
    within = per_fold.var(ddof=1)  # NaN for a fold with one seed
    for m in metrics:
        out[f"{m}_std"] = float(fold_means[m].std(ddof=1)) if len(fold_means) > 1 else np.nan
        var = within[m].dropna()
        out[f"{m}_seed_sd"] = float(np.sqrt(var.mean())) if len(var) else np.nan
    return out


def seed_columns(table: pd.DataFrame, scored: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Table 4/5 rows (``model_summary`` output) made seed-aware from ``scored`` (the rows they summarise).

    With one seed everywhere: unchanged. Otherwise each model row's ``<m>_std`` becomes the fold std and
    ``<m>_seed_sd`` and ``n_seeds`` are added (floor rows: NaN; trivial predictions have no seed)."""
    if len(seeds_of(scored)) <= 1 or table.empty:
        return table
    out = table.copy()
    for m in metrics:
        out[f"{m}_seed_sd"] = np.nan
    out["n_seeds"] = pd.NA
    for i, row in out.iterrows():
        if row.get("kind", "model") != "model":
            continue
        cell = scored[(scored["dataset"] == row["dataset"]) & (scored["arch"] == row["arch"])]
        if cell.empty:
            continue
        for k, v in spread(cell, metrics).items():
            out.at[i, k] = v
    cols = list(table.columns)
    for m in metrics:  # each seed std right after its "mean ± fold std" pair
        if f"{m}_std" in cols:
            cols.insert(cols.index(f"{m}_std") + 1, f"{m}_seed_sd")
    cols.insert(cols.index("n_models") + 1 if "n_models" in cols else len(cols), "n_seeds")
    return out[cols]


def collapse_seeds(sel: pd.DataFrame) -> pd.DataFrame:
    """One row per (fold model, image) of a like-for-like selection (``bench.analysis.stats.select``), each
    metric averaged over the seeds that scored it; other columns keep the first seed's value, ``seed``
    becomes the smallest seed and ``n_seeds`` says how many were averaged. One seed: ``sel`` unchanged."""
    if sel.empty or len(seeds_of(sel)) <= 1:
        return sel
    metrics = [c for c in METRIC_COLUMNS if c in sel.columns]
    keys = [c for c in IDENTITY if c in sel.columns]
    grouped = sel.sort_values("seed", kind="stable").groupby(keys, dropna=False, sort=False)
    out = grouped.first()
    out[metrics] = grouped[metrics].mean()
    out["n_seeds"] = grouped["seed"].nunique()
    return out.reset_index()[[*sel.columns, "n_seeds"]]


def bootstrap_means(
    sel: pd.DataFrame,
    values: pd.DataFrame,
    idx: np.ndarray,
    rng: np.random.Generator,
    unit_values: Callable[[pd.DataFrame], pd.DataFrame],
) -> np.ndarray:
    """Bootstrap means (``n_boot x archs``) over the resampled units ``idx`` (rows of ``values``, units x
    archs) and, with several seeds in ``sel`` (one dataset's rows of one protocol), over resampled seeds:
    each replicate draws, per architecture, as many seeds as there are, with replacement, and averages
    the unit means of the seeds drawn. ``unit_values(rows)`` gives the units x archs table of some rows
    (one seed's). With one seed: ``values[idx].mean(axis=1)``, ``rng`` unused (the single-seed bootstrap)."""
    x = values.to_numpy(float)
    seeds = seeds_of(sel)
    if len(seeds) <= 1:
        return x[idx].mean(axis=1)
    per_seed = np.stack(
        [
            unit_values(sel[sel["seed"] == s]).reindex(index=values.index, columns=values.columns).to_numpy(float)
            for s in seeds
        ]
    )
    if np.isnan(per_seed).any():
        have = sel.groupby("arch")["seed"].unique()
        raise NoResults(
            f"not every architecture has every seed on every unit "
            f"({'; '.join(f'{a}: seeds {sorted(map(int, s))}' for a, s in have.items())}); run the same --seeds for all"
        )
    unit_means = per_seed[:, idx, :].mean(axis=2)  # seeds x n_boot x archs
    n_seeds, n_boot, n_archs = unit_means.shape
    pick = rng.integers(0, n_seeds, size=(n_boot, n_seeds, n_archs))
    chosen = np.take_along_axis(np.moveaxis(unit_means, 0, 1), pick, axis=1)  # n_boot x seeds x archs
    return chosen.mean(axis=1)


def resample_note(df: pd.DataFrame, dataset: str, protocol: str) -> str:
    """What the rank table's ``units`` column adds: "; units and N seeds ... resampled", or the one-seed note."""
    seeds = seeds_of(df[(df["dataset"] == dataset) & (df["protocol"] == protocol)])
    if len(seeds) <= 1:
        return f"; {ONE_SEED}"
    return f"; units and {len(seeds)} seeds per architecture resampled"
