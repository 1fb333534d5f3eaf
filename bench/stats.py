"""Paired significance tests on the tidy per-image results table (paper Fig. 8: t-test on IoU, p <= 0.05).

Conventions (design/conventions.md, "Statistics"):

- Pairing is strictly by ``case_id``: the two architectures must have scored exactly the same images,
  otherwise a ValueError lists the ids found for only one of them.
- Unit of analysis: ``cv`` protocol -> out-of-fold images (every image scored once, by the fold model
  that did not see it); ``holdout`` protocol, ``test`` split -> test-set images, each image's value
  first averaged over the fold models that scored it. Several seeds are averaged per image too. The
  ``unit`` column of every result says which.
- Paired t-test (the paper's) or Wilcoxon signed-rank (scipy.stats), Holm correction across the
  comparisons of one call (statsmodels), Cohen's d_z = mean(diff) / sd(diff), and the t-based 95%
  confidence interval of the mean difference (``ttest_rel(...).confidence_interval()``).
- A test on <= 5 units per architecture (e.g. five fold means) warns: it has almost no power.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

TESTS = ("t", "wilcoxon")
CORRECTIONS = ("holm", "bonferroni", "none")
MIN_UNITS = 5  # n <= MIN_UNITS warns
DEFAULT_SPLIT = {"cv": "val", "holdout": "test"}
RESULT_COLUMNS = [
    "dataset", "metric", "reference", "other", "n", "mean_ref", "mean_other", "mean_diff", "ci_low", "ci_high",
    "d_z", "statistic", "p_raw", "p_adj", "significant", "test", "correction", "alpha", "n_excluded",
    "models_ref", "models_other", "unit",
]
#: The paper's datasets and their aliases, used when the dataset registry does not (yet) know a name.
PAPER_DATASET_NAMES = {"isbi2012": "isbi2012", "isic2018": "isic2018", "lgg_mri": "lgg_mri", "mri": "lgg_mri",
                       "glas2015": "glas2015", "dsb2018": "dsb2018"}
_MODEL_KEYS = ["fold", "seed"]  # one fold model = one (fold, seed) pair within (dataset, arch, protocol)


def canonical_dataset(name: str) -> str:
    """Registry name of dataset ``name`` (``mri`` -> ``lgg_mri``); unknown names raise KeyError with suggestions."""
    from bench.datasets import canonical_name

    try:
        return canonical_name(name)
    except KeyError:
        if name in PAPER_DATASET_NAMES:  # the paper's datasets, before their modules are registered
            return PAPER_DATASET_NAMES[name]
        raise


def default_split(protocol: str, split: str | None = None) -> str:
    if split is not None:
        return split
    if protocol not in DEFAULT_SPLIT:
        raise ValueError(f"protocol must be one of {sorted(DEFAULT_SPLIT)}, got {protocol!r}")
    return DEFAULT_SPLIT[protocol]


def unit_of_analysis(protocol: str, split: str, n_seeds: int = 1) -> str:
    """Plain-words unit of one paired observation, written into every output."""
    if protocol == "cv":
        text = "out-of-fold images (cv)"
    elif split == "test":
        text = "test-set images, averaged over fold models (holdout)"
    else:
        text = f"{split}-fold images of the fold models (holdout {split})"
    return text + (f", averaged over {n_seeds} seeds" if n_seeds > 1 else "")


def check_unique(df: pd.DataFrame) -> None:
    """Refuse two rows for one (dataset, arch, protocol, fold, seed, split, case): results of two configurations."""
    keys = [c for c in ("dataset", "arch", "protocol", "fold", "seed", "split", "case_id") if c in df.columns]
    dup = df[df.duplicated(keys, keep=False)]
    if len(dup):
        cells = sorted({f"{r.dataset}/{r.arch}/{r.protocol}/fold{r.fold}/seed{r.seed}" for r in dup.itertuples()})
        jobs = sorted(dup["job_key"].astype(str).unique()) if "job_key" in dup else []
        raise ValueError(f"{len(dup)} duplicate result rows for {', '.join(cells[:10])} (job_keys {jobs[:10]}): "
                         "results of more than one configuration are loaded; filter by profile or job_key first")


def select(df: pd.DataFrame, *, dataset: str | None = None, protocol: str, split: str | None = None,
           archs: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of one protocol/split (default split: cv -> val, holdout -> test), optionally one dataset and archs.

    Raises if the selection mixes data sources or evaluation sizes, or holds duplicate rows.
    """
    split = default_split(protocol, split)
    mask = (df["protocol"] == protocol) & (df["split"] == split)
    if dataset is not None:
        mask &= df["dataset"] == canonical_dataset(dataset)
    if archs is not None:
        mask &= df["arch"].isin(list(archs))
    out = df[mask & at_report_resolution(df)]
    for col in ("source", "eval_size", "profile", "cohort_fingerprint"):
        if col in out.columns:
            for ds, values in out.groupby("dataset")[col].unique().items():
                if len(values) > 1:
                    raise ValueError(f"{ds}: results mix {col} values {sorted(map(str, values))}; filter first")
    check_unique(out)
    return out


def at_report_resolution(df: pd.DataFrame) -> pd.Series:
    """Rows at the resolution reports use: ``eval_resolution == "input"`` (rows without the column are
    input-size rows), or ``native`` when ``df`` holds only native-resolution rows. Never both."""
    if "eval_resolution" not in df.columns:
        return pd.Series(True, index=df.index)
    res = df["eval_resolution"].fillna("input")
    return res == ("input" if (res == "input").any() or res.empty else "native")


@dataclass(frozen=True)
class PerImage:
    """Per-image values of one dataset/protocol/split, one column per arch (index ``case_id``).

    ``values`` is each image's mean over the fold models (and seeds) that scored it, NaN metric values
    (a both-empty image under an exclusion rule) skipped; ``scored`` says which arch scored which image
    (a NaN value still counts as scored); ``n_models`` the number of fold models per arch.
    """

    values: pd.DataFrame
    scored: pd.DataFrame
    n_models: pd.Series
    unit: str


def per_image(df: pd.DataFrame, *, dataset: str, metric: str = "iou", protocol: str = "cv",
              split: str | None = None) -> PerImage:
    """The paired unit of analysis: see ``PerImage`` and the module docstring."""
    sel = select(df, dataset=dataset, protocol=protocol, split=split)
    if metric not in sel.columns:
        raise KeyError(f"no metric column {metric!r}; columns: {', '.join(df.columns)}")
    if sel.empty:
        raise ValueError(f"no {protocol}/{default_split(protocol, split)} results for dataset {dataset!r}")
    values = sel.groupby(["case_id", "arch"])[metric].mean().unstack("arch")
    scored = sel.groupby(["case_id", "arch"]).size().unstack("arch").reindex_like(values).notna()
    n_models = sel.drop_duplicates(["arch", *_MODEL_KEYS]).groupby("arch").size()
    unit = unit_of_analysis(protocol, default_split(protocol, split), int(sel["seed"].nunique()))
    return PerImage(values, scored, n_models, unit)


def paired_vectors(data: PerImage, ref: str, other: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Aligned (ref, other) vectors sorted by case_id; refuses unmatched case_id sets (listing them);
    drops pairs where either value is NaN and returns how many."""
    has_ref = set(data.scored.index[data.scored[ref]])
    has_other = set(data.scored.index[data.scored[other]])
    if has_ref != has_other:
        only_ref, only_other = sorted(has_ref - has_other), sorted(has_other - has_ref)
        raise ValueError(f"unmatched images between {ref!r} and {other!r}: {len(only_ref)} only in {ref} "
                         f"{_ids(only_ref)}, {len(only_other)} only in {other} {_ids(only_other)}")
    ids = sorted(has_ref)
    a, b = data.values.loc[ids, ref].to_numpy(float), data.values.loc[ids, other].to_numpy(float)
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep], int((~keep).sum())


def _ids(ids: list[str], limit: int = 20) -> str:
    return "[" + ", ".join(ids[:limit]) + (f", ... {len(ids) - limit} more" if len(ids) > limit else "") + "]"


def _compare(a: np.ndarray, b: np.ndarray, test: str) -> dict[str, float]:
    """Numbers of one comparison (a = reference, b = other); equal to scipy on the same vectors."""
    n = len(a)
    row: dict[str, float] = {"n": n, "mean_ref": _mean(a), "mean_other": _mean(b), "mean_diff": _mean(a - b)}
    if n < 2:
        return {**row, "ci_low": np.nan, "ci_high": np.nan, "d_z": np.nan, "statistic": np.nan, "p_raw": np.nan}
    diff = a - b
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance differences: scipy returns nan
        tt = sps.ttest_rel(a, b)
        ci = tt.confidence_interval(0.95)
        res = tt if test == "t" else sps.wilcoxon(a, b)
    sd = float(np.std(diff, ddof=1))
    d_z = row["mean_diff"] / sd if sd > 0 else np.nan
    return {**row, "ci_low": float(ci.low), "ci_high": float(ci.high), "d_z": d_z,
            "statistic": float(res.statistic), "p_raw": float(res.pvalue)}


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else np.nan


def adjust(p: Sequence[float], correction: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p, significant) with statsmodels' ``multipletests``; NaN p-values stay NaN and not significant."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    p = np.asarray(p, dtype=float)
    p_adj, sig = p.copy(), np.zeros(len(p), dtype=bool)
    ok = ~np.isnan(p)
    if correction == "none":
        sig[ok] = p[ok] <= alpha
    elif ok.any():
        sig[ok], p_adj[ok] = multipletests(p[ok], alpha=alpha, method=correction)[:2]
    return p_adj, sig


def paired_test(df: pd.DataFrame, *, dataset: str, metric: str = "iou", reference: str = "mildnet",
                against: str | Sequence[str] | None = None, protocol: str = "cv", split: str | None = None,
                test: str = "t", correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """Paired tests of ``reference`` against each arch in ``against`` (default: every other arch present).

    One row per comparison (columns ``RESULT_COLUMNS``); ``mean_diff`` = reference - other, so a
    positive difference favours the reference for dice/iou and the other arch for hd/hd95.
    """
    if test not in TESTS:
        raise ValueError(f"test must be one of {TESTS}, got {test!r}")
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, split=split)
    rows = []
    for other in _others(data.values.columns, reference, against):
        a, b, n_excluded = paired_vectors(data, reference, other)
        rows.append({"dataset": canonical_dataset(dataset), "metric": metric, "reference": reference, "other": other,
                     **_compare(a, b, test), "n_excluded": n_excluded,
                     "models_ref": int(data.n_models[reference]), "models_other": int(data.n_models[other])})
    out = pd.DataFrame(rows)
    out["p_adj"], out["significant"] = adjust(out["p_raw"], correction, alpha)
    out["test"], out["correction"], out["alpha"], out["unit"] = test, correction, alpha, data.unit
    _warn_small(out, data.unit)
    return out[RESULT_COLUMNS]


def _others(present: pd.Index, reference: str, against: str | Sequence[str] | None) -> list[str]:
    if reference not in present:
        raise ValueError(f"reference arch {reference!r} has no results here; present: {', '.join(present)}")
    if against is None:
        against = [a for a in present if a != reference]
    wanted = [against] if isinstance(against, str) else list(against)
    missing = [a for a in wanted if a not in present]
    if missing:
        raise ValueError(f"no results for {', '.join(missing)}; present: {', '.join(present)}")
    others = [a for a in wanted if a != reference]
    if not others:
        raise ValueError(f"nothing to compare {reference!r} against (against={against!r})")
    return others


def _warn_small(out: pd.DataFrame, unit: str) -> None:
    small = out[out["n"] <= MIN_UNITS]
    if len(small):
        warnings.warn(f"paired test on n <= {MIN_UNITS} {unit} ({', '.join(small['other'])}): far too few units "
                      "for a meaningful test (testing fold means?); pair per-image values instead", stacklevel=3)


def paired_tests(df: pd.DataFrame, datasets: Sequence[str] | None = None, **kwargs: object) -> pd.DataFrame:
    """``paired_test`` for each dataset (default: every dataset with results for the protocol); the
    correction applies within each dataset, as the paper's per-panel Fig. 8 tests."""
    protocol = str(kwargs.get("protocol", "cv"))
    names = datasets or sorted(df.loc[df["protocol"] == protocol, "dataset"].unique())
    frames = [paired_test(df, dataset=d, **kwargs) for d in names]  # type: ignore[arg-type]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)


def stars(p: float) -> str:
    """'***' p <= 0.001, '**' <= 0.01, '*' <= 0.05, 'ns' otherwise (NaN: 'n/a')."""
    if p is None or np.isnan(p):
        return "n/a"
    return "***" if p <= 0.001 else "**" if p <= 0.01 else "*" if p <= 0.05 else "ns"


def format_tests(df: pd.DataFrame, fmt: str = "text") -> str:
    """Render ``paired_test`` output as aligned text, CSV or a Markdown table; the unit is always stated."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt not in ("text", "md"):
        raise ValueError(f"fmt must be text, csv or md, got {fmt!r}")
    shown = pd.DataFrame({
        "dataset": df["dataset"], "metric": df["metric"], "comparison": df["reference"] + " vs " + df["other"],
        "n": df["n"].astype(int), "mean ref": df["mean_ref"].map("{:.4f}".format),
        "mean other": df["mean_other"].map("{:.4f}".format), "mean diff": df["mean_diff"].map("{:+.4f}".format),
        "95% CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(df["ci_low"], df["ci_high"])],
        "d_z": df["d_z"].map("{:.2f}".format), "statistic": df["statistic"].map("{:.3f}".format),
        "p": df["p_raw"].map(_p), "p adj": df["p_adj"].map(_p),
        "": [stars(p) if s or np.isnan(p) else "ns" for p, s in zip(df["p_adj"], df["significant"])],
    })
    notes = sorted({f"{t} test, {c} correction, alpha {a:g}; unit: {u}"
                    for t, c, a, u in zip(df["test"], df["correction"], df["alpha"], df["unit"])})
    excluded = int(df["n_excluded"].sum()) if "n_excluded" in df else 0
    if excluded:
        notes.append(f"{excluded} image pairs excluded for a NaN value (empty-mask exclusion rule)")
    if fmt == "md":
        head = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
        body = "".join("| " + " | ".join(map(str, r)) + " |\n" for r in shown.itertuples(index=False))
        return head + body + "\n" + "\n".join(f"*{n}*" for n in notes) + "\n"
    return shown.to_string(index=False) + "\n" + "\n".join(notes) + "\n"


def _p(p: float) -> str:
    return "nan" if np.isnan(p) else f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def ranks(means: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank archs within each dataset (1 = best; higher is better for dice/iou, lower for distances).

    ``means`` has columns dataset, arch and ``metric``; ties share the average rank.
    """
    ascending = metric.startswith("hd")
    out = means.copy()
    out["rank"] = out.groupby("dataset")[metric].rank(ascending=ascending, method="average")
    return out
