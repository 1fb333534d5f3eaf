"""Can a dataset separate the architectures at all, at this budget? (``bench report --table suitability``)

Per dataset and metric, from the scored rows alone:

- **between**: the variance (ddof=1) across architectures of their means, each architecture's mean
  being the mean over its fold models (every fold and seed) of each fold model's mean over its images;
- **within**: the spread of one architecture: the variance (ddof=1) across its fold models (folds and
  seeds), averaged over the architectures;
- **ratio** = between / within, with a 95% percentile bootstrap interval (``N_BOOT`` replicates, seeded):
  each replicate resamples every architecture's fold models with replacement. A ratio above 1 says the
  architectures differ by more than one architecture varies from fold to fold and seed to seed;
- **floor distance**: the best architecture's mean minus the better of the two trivial floors (all
  foreground, all background; ``bench.analysis.floors``) on the same images, in the metric's units
  (sign turned so that positive is better, for distances too).

Verdict: ``SEPARATES`` when the interval's lower end is above 1 and the best architecture is more than
``MIN_FLOOR_MARGIN`` (Dice/IoU) above the better floor (any margin above 0 for distances); otherwise
``CANNOT``, with the reasons. A dataset that cannot separate the architectures says nothing about which
is better, whatever its paired tests say; the consensus rank leaves it out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.analysis.floors import FLOORS, trivial_scores
from bench.analysis.seeds import seeds_of
from bench.analysis.stats import canonical_dataset, default_split, select
from bench.errors import NoResults
from bench.metrics import higher_is_better

SEPARATES = "separates these architectures"
CANNOT = "cannot separate them at this budget"
#: The best architecture must beat the better trivial floor by more than this (Dice, IoU) to count.
MIN_FLOOR_MARGIN = 0.05
N_BOOT = 2000
COLUMNS = [
    "dataset",
    "metric",
    "protocol",
    "n_archs",
    "n_models",
    "n_seeds",
    "best_arch",
    "best_value",
    "between_var",
    "within_var",
    "ratio",
    "ratio_low",
    "ratio_high",
    "better_floor",
    "floor_value",
    "floor_distance",
    "verdict",
    "reason",
]
_MODEL = ["fold", "seed"]


def report_protocol(df: pd.DataFrame) -> str:
    """``holdout`` when there are holdout test rows (Table 5's), else ``cv``."""
    return "holdout" if ((df["protocol"] == "holdout") & (df["split"] == "test")).any() else "cv"


def fold_model_means(sel: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (arch, fold, seed): the fold model's mean ``metric`` over the images it scored."""
    return sel.groupby(["arch", *_MODEL])[metric].mean().rename(metric).reset_index()


def variance_ratio(models: pd.DataFrame, metric: str) -> tuple[float, float, float]:
    """(between, within, ratio) of ``fold_model_means`` output; NaN where undefined."""
    by_arch = models.groupby("arch")[metric]
    means, variances = by_arch.mean(), by_arch.var(ddof=1)
    between = float(means.var(ddof=1)) if len(means) > 1 else np.nan
    within = float(variances.mean()) if variances.notna().any() else np.nan
    ratio = between / within if within and not np.isnan(within) and within > 0 else np.nan
    if within == 0 and between > 0:
        ratio = np.inf
    return between, within, ratio


def bootstrap_ratio(models: pd.DataFrame, metric: str, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the variance ratio, resampling each architecture's fold models."""
    if models["arch"].nunique() < 2 or models.groupby("arch").size().min() < 2:
        return np.nan, np.nan  # nothing to compare, or no spread within an architecture to compare with
    rng = np.random.default_rng(seed)
    means, variances = [], []
    for _, g in models.groupby("arch", sort=True):
        v = g[metric].to_numpy(float)
        draw = v[rng.integers(0, len(v), size=(n_boot, len(v)))]
        means.append(draw.mean(axis=1))
        variances.append(draw.var(axis=1, ddof=1))
    between = np.var(np.stack(means, axis=1), axis=1, ddof=1)
    within = np.mean(np.stack(variances, axis=1), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(within > 0, between / within, np.where(between > 0, np.inf, np.nan))
    ratio = ratio[~np.isnan(ratio)]
    if len(ratio) == 0:
        return np.nan, np.nan
    low, high = np.percentile(ratio, [2.5, 97.5], method="inverted_cdf")  # no interpolation: ratios may be inf
    return float(low), float(high)


def better_floor(sel: pd.DataFrame, metric: str) -> tuple[str, float]:
    """(floor name, mean) of the better trivial floor on the images of ``sel``, aggregated like the models."""
    images = sel.drop_duplicates([*_MODEL, "case_id"])
    scores = {}
    for floor in FLOORS:
        scored = images.assign(_floor=trivial_scores(images, floor)[metric])
        per_model = scored.groupby(_MODEL)["_floor"].mean()
        scores[floor] = float(per_model.mean()) if per_model.notna().all() else np.nan
    valid = {k: v for k, v in scores.items() if not np.isnan(v)}
    if not valid:
        return "", np.nan
    pick = max if higher_is_better(metric) else min
    name = pick(valid, key=lambda k: valid[k])
    return name, valid[name]


def assess(
    df: pd.DataFrame, dataset: str, metric: str = "dice", protocol: str | None = None, n_boot: int = N_BOOT
) -> dict[str, object]:
    """One row of the suitability table (``COLUMNS``)."""
    protocol = protocol or report_protocol(df)
    sel = select(df, dataset=dataset, protocol=protocol)
    if sel.empty:
        raise NoResults(f"no {protocol}/{default_split(protocol)} results for {dataset}")
    models = fold_model_means(sel, metric)
    between, within, ratio = variance_ratio(models, metric)
    low, high = bootstrap_ratio(models, metric, n_boot)
    means = models.groupby("arch")[metric].mean()
    higher = higher_is_better(metric)
    best = str(means.idxmax() if higher else means.idxmin())
    floor, floor_mean = better_floor(sel, metric)
    distance = (means[best] - floor_mean) if higher else (floor_mean - means[best])
    verdict, reason = _verdict(metric, len(means), models, low, distance, floor)
    return {
        "dataset": canonical_dataset(dataset),
        "metric": metric,
        "protocol": protocol,
        "n_archs": len(means),
        "n_models": int(models.groupby("arch").size().min()),
        "n_seeds": len(seeds_of(sel)),
        "best_arch": best,
        "best_value": float(means[best]),
        "between_var": between,
        "within_var": within,
        "ratio": ratio,
        "ratio_low": low,
        "ratio_high": high,
        "better_floor": floor,
        "floor_value": floor_mean,
        "floor_distance": float(distance),
        "verdict": verdict,
        "reason": reason,
    }


def _verdict(
    metric: str, n_archs: int, models: pd.DataFrame, low: float, distance: float, floor: str
) -> tuple[str, str]:
    reasons = []
    if n_archs < 2:
        reasons.append("one architecture: nothing to separate")
    elif models.groupby("arch").size().min() < 2:
        reasons.append("one fold model per architecture: the spread within an architecture is not measured")
    elif np.isnan(low) or low <= 1:
        reasons.append(
            f"the architectures' spread is not clearly above one architecture's fold/seed spread "
            f"(ratio CI lower end {low:.2g} <= 1)"
        )
    margin = MIN_FLOOR_MARGIN if metric in ("dice", "iou") else 0.0
    if np.isnan(distance):
        reasons.append("the trivial floor is not derivable from counts for this metric")
    elif distance <= margin:
        reasons.append(
            f"the best architecture is {distance:+.3f} from predicting {floor.replace('_', ' ')} "
            f"(needs more than {margin:g})"
        )
    if reasons:
        return CANNOT, "; ".join(reasons)
    return SEPARATES, f"ratio CI lower end {low:.2g} > 1; best {distance:+.3f} above the better floor"


def suitability_table(
    df: pd.DataFrame,
    *,
    metrics: Sequence[str] = ("dice", "iou"),
    protocol: str | None = None,
    datasets: Sequence[str] | None = None,
    n_boot: int = N_BOOT,
) -> pd.DataFrame:
    """One row per (dataset, metric) in ``COLUMNS``; caption in ``attrs``."""
    protocol = protocol or report_protocol(df)
    split = default_split(protocol)
    names = (
        [canonical_dataset(d) for d in datasets]
        if datasets
        else sorted(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique())
    )
    if not names:
        raise NoResults(f"no {protocol}/{split} results to assess")
    rows = [assess(df, ds, m, protocol, n_boot) for ds in names for m in metrics]
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["caption"] = caption(protocol, split, n_boot)
    return out


def caption(protocol: str, split: str, n_boot: int) -> str:
    return (
        f"Dataset suitability ({protocol}, {split} images): between_var = variance across architectures of "
        "their means over fold models; within_var = variance across one architecture's fold models (folds and "
        f"seeds), averaged over architectures; ratio = between / within with its 95% bootstrap interval "
        f"({n_boot} resamples of each architecture's fold models, seed 0); floor_distance = best architecture "
        f"minus the better trivial floor on the same images (positive: better). '{SEPARATES}' needs the "
        f"interval above 1 and the best architecture more than {MIN_FLOOR_MARGIN:g} (Dice/IoU) above the floor."
    )


def separating(df: pd.DataFrame, datasets: Sequence[str], metric: str, protocol: str) -> tuple[list[str], list[str]]:
    """(datasets that separate the architectures on ``metric``, those that cannot), in the given order."""
    keep, left = [], []
    for ds in datasets:
        (keep if assess(df, ds, metric, protocol)["verdict"] == SEPARATES else left).append(ds)
    return keep, left


def consensus_datasets(df: pd.DataFrame, datasets: Sequence[str], metric: str, protocol: str) -> tuple[list[str], str]:
    """(the datasets a consensus across datasets should use, the sentence that says what was left out).

    The datasets that separate the architectures on ``metric``; when none does, all of them, with a
    sentence saying that the consensus then says nothing about which architecture is better."""
    keep, left = separating(df, datasets, metric, protocol)
    if not left:
        return list(datasets), ""
    if not keep:
        return list(datasets), (
            f"; none of the {len(left)} datasets separates the architectures at this budget "
            "(--table suitability): this consensus says nothing about which is better"
        )
    return keep, f"; left out, {CANNOT} (--table suitability): {', '.join(left)}"
