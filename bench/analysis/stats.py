"""Paired significance tests on the tidy per-image results table (paper Fig. 8: t-test on IoU, p <= 0.05).

Conventions (docs/protocols.md, "Units of analysis and paired tests"):

- Pairing is strictly by ``case_id``: the two architectures must have scored exactly the same images,
  otherwise a ValueError lists the ids found for only one of them.
- Unit of analysis (``unit``): ``"group"`` (default) tests the independent units: each image's value
  is first averaged over the fold models (and seeds) that scored it, then over the images of its
  ``group`` (an LGG patient; the source image of ISBI/GlaS patches; the image itself elsewhere), and the
  architectures are paired over groups. Slices of one patient and patches of one source image are
  correlated, so treating them as independent (``unit="image"``, kept for comparison with the paper,
  which did) overstates the evidence. The ``unit`` column names what was paired: patients, source
  images, patches, slices or images, out of fold (``cv``) or on the test set (``holdout``).
- Paired t-test (the paper's) or Wilcoxon signed-rank (scipy.stats), Holm correction across the
  comparisons of one call (statsmodels), Cohen's d_z = mean(diff) / sd(diff), and the t-based 95%
  confidence interval of the mean difference (``ttest_rel(...).confidence_interval()``), in the units
  of the metric per unit of analysis.
- ``fold_level_test``: under ``cv``, the corrected resampled t-test of Nadeau and Bengio (2003) on the
  fold models' mean differences, whose variance accounts for the overlapping training sets.
- A test on <= 5 units per architecture (e.g. five fold means) warns: it has almost no power.
- Every comparison refuses architectures whose jobs differ in anything but the architecture
  (``bench.results.selection.check_like_for_like``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from bench.datasets import canonical_name, dataset_info
from bench.errors import InvalidInput, NoResults, UnknownName
from bench.metrics import higher_is_better
from bench.results.selection import check_like_for_like

#: The paper's proposed network: the default reference of the paired tests and of Fig. 8.
REFERENCE = "mildnet"
TESTS = ("t", "wilcoxon")
UNITS = ("group", "image", "patient")  # patient: as the dataset layout records it (column ``patient``)
NADEAU_BENGIO = (
    "corrected resampled t (Nadeau C. & Bengio Y. 2003, Inference for the generalization error, "
    "Machine Learning 52:239-281)"
)
CORRECTIONS = ("holm", "bonferroni", "none")
MIN_UNITS = 5  # n <= MIN_UNITS warns
DEFAULT_SPLIT = {"cv": "val", "holdout": "test"}
RESULT_COLUMNS = [
    "dataset",
    "metric",
    "reference",
    "other",
    "n",
    "mean_ref",
    "mean_other",
    "mean_diff",
    "ci_low",
    "ci_high",
    "d_z",
    "statistic",
    "p_raw",
    "p_adj",
    "significant",
    "test",
    "correction",
    "alpha",
    "n_excluded",
    "models_ref",
    "models_other",
    "unit",
    "unit_level",
    "n_images",
]
_MODEL_KEYS = ["fold", "seed"]  # one fold model = one (fold, seed) pair within (dataset, arch, protocol)


def canonical_dataset(name: str) -> str:
    """Registry name of dataset ``name`` (``mri`` -> ``lgg_mri``); unknown names raise KeyError with suggestions."""

    return canonical_name(name)


def default_split(protocol: str, split: str | None = None) -> str:
    if split is not None:
        return split
    if protocol not in DEFAULT_SPLIT:
        raise InvalidInput(f"protocol must be one of {sorted(DEFAULT_SPLIT)}, got {protocol!r}")
    return DEFAULT_SPLIT[protocol]


def _patient_record(dataset: str) -> str:
    """The file in which ``dataset``'s layout records patients ("" for none or an unknown name)."""
    from bench.datasets import dataset_info

    try:
        return dataset_info(dataset).patient_record
    except KeyError:
        return ""


def _patient_records() -> str:
    """ "GlaS-2015: Grade.csv"-style list of the registered datasets that record patients."""
    from bench.datasets import dataset_info, list_datasets

    found = [dataset_info(name) for name in list_datasets()]
    return ", ".join(f"{c.display_name or c.name}: {c.patient_record}" for c in found if c.patient_record) or "none"


def unit_nouns(dataset: str, grouped: bool) -> tuple[str, str]:
    """(independent unit, scored image) nouns of ``dataset``, its class attribute ``unit_nouns``: ("patients",
    "slices") for LGG, ("source images", "patches") for ISBI/GlaS; the image noun twice where every image is
    its own group (``grouped`` False). A name no registered dataset has: ("groups", "images")."""

    try:
        group, image = dataset_info(dataset).unit_nouns
    except KeyError:
        group, image = "groups", "images"
    return (group, image) if grouped else (image, image)


def unit_of_analysis(
    protocol: str, split: str, n_seeds: int = 1, *, dataset: str = "", unit: str = "image", grouped: bool = False
) -> str:
    """Plain-words unit of one paired observation, written into every output (e.g. "patients (each the
    mean of its out-of-fold slices; cv)" or "out-of-fold slices (cv)")."""
    group_noun, image_noun = unit_nouns(dataset, grouped)
    if protocol == "cv":
        where, tail = "out-of-fold", "cv"
    elif split == "test":
        where, tail = "test-set", "averaged over fold models; holdout"
    else:
        where, tail = f"{split}-fold", f"holdout {split}"
    if unit == "patient":
        group_noun = f"patients ({_patient_record(dataset) or 'as recorded'})"
    if unit in ("group", "patient") and grouped:
        text = f"{group_noun} (each the mean of its {where} {image_noun}; {tail})"
    else:
        text = f"{where} {image_noun} ({tail})"
        if unit == "image" and grouped:
            one = {"patients": "patient", "source images": "source image"}.get(group_noun, "group")
            text += f", image level: {image_noun} of one {one} are correlated, not independent"
    text = text.replace("; averaged over fold models; holdout)", ", averaged over fold models; holdout)")
    return text + (f", averaged over {n_seeds} seeds" if n_seeds > 1 else "")


def resolve_protocol(df: pd.DataFrame, dataset: str | None = None, protocol: str | None = None) -> tuple[str, str]:
    """(protocol, note): ``protocol`` when given; else ``cv`` if it has results (for ``dataset``), else
    ``holdout`` with a note saying so; neither: a ValueError naming the command that makes them."""
    if protocol is not None:
        return protocol, ""
    has = {}
    for p, split in DEFAULT_SPLIT.items():
        mask = (df["protocol"] == p) & (df["split"] == split) if len(df) else pd.Series(dtype=bool)
        if dataset is not None and len(df):
            mask &= df["dataset"] == canonical_dataset(dataset)
        has[p] = bool(mask.any())
    what = f"dataset {canonical_dataset(dataset)}" if dataset else "any dataset"
    if has["cv"]:
        return "cv", f"protocol cv (out-of-fold scores, as the paper's Fig. 8) for {what}"
    if has["holdout"]:
        return "holdout", (
            f"protocol holdout (test set): no cv results for {what}; the paper's Fig. 8 used cv "
            f"({run_command(dataset, 'cv')})"
        )
    raise NoResults(f"no cv or holdout results for {what}: {run_command(dataset, 'cv')} makes them")


def run_command(dataset: str | None, protocol: str) -> str:
    """The ``bench run`` command that produces ``protocol`` results for ``dataset`` (or every dataset)."""
    target = f"--dataset {dataset} --arch mildnet,unet" if dataset else "--all"
    folds = " --folds 0,1,2,3,4" if protocol == "cv" else ""
    return f"`bench run {target} --protocol {protocol}{folds}`"


def check_unique(df: pd.DataFrame) -> None:
    """Refuse two rows for one (dataset, arch, protocol, fold, seed, split, case): results of two configurations."""
    keys = [c for c in ("dataset", "arch", "protocol", "fold", "seed", "split", "case_id") if c in df.columns]
    dup = df[df.duplicated(keys, keep=False)]
    if len(dup):
        cells = sorted({f"{r.dataset}/{r.arch}/{r.protocol}/fold{r.fold}/seed{r.seed}" for r in dup.itertuples()})
        jobs = sorted(dup["job_key"].astype(str).unique()) if "job_key" in dup else []
        raise NoResults(
            f"{len(dup)} duplicate result rows for {', '.join(cells[:10])} (job_keys {jobs[:10]}): "
            "results of more than one configuration are loaded; filter by profile or job_key first"
        )


def select(
    df: pd.DataFrame,
    *,
    dataset: str | None = None,
    protocol: str,
    split: str | None = None,
    archs: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of one protocol/split (default split: cv -> val, holdout -> test), optionally one dataset and archs.

    Raises if the archs' jobs differ in anything but the architecture (data source, evaluation size,
    profile, split, data options and, when attached, every training setting: ``check_like_for_like``)
    or the selection holds duplicate rows.
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
                    raise NoResults(
                        f"{ds}: results mix {col} values {sorted(map(str, values))}; filter first (--where KEY=VALUE)"
                    )
    check_like_for_like(out, f"{protocol}/{split} comparison")
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
    (a NaN value still counts as scored); ``n_models`` the number of fold models per arch; ``groups``
    each image's group; ``level`` the unit of analysis (``group``, ``patient`` or ``image``) and ``unit`` its words.
    """

    values: pd.DataFrame
    scored: pd.DataFrame
    n_models: pd.Series
    unit: str
    groups: pd.Series | None = None
    level: str = "image"

    @property
    def grouped(self) -> bool:
        """Do some groups hold more than one image (so group and image level differ)?"""
        return self.groups is not None and bool(self.groups.duplicated().any())

    def unit_values(self) -> pd.DataFrame:
        """One row per unit of analysis (group means of ``values`` at group level), one column per arch."""
        if self.level == "image" or self.groups is None:
            return self.values
        return self.values.groupby(self.groups.reindex(self.values.index)).mean()


def per_image(
    df: pd.DataFrame,
    *,
    dataset: str,
    metric: str = "iou",
    protocol: str = "cv",
    split: str | None = None,
    unit: str = "group",
) -> PerImage:
    """The paired values: see ``PerImage`` and the module docstring."""
    if unit not in UNITS:
        raise InvalidInput(f"unit must be one of {UNITS}, got {unit!r}")
    sel = select(df, dataset=dataset, protocol=protocol, split=split)
    if metric not in sel.columns:
        raise UnknownName(f"no metric column {metric!r}; columns: {', '.join(df.columns)}")
    if sel.empty:
        raise NoResults(
            f"no {protocol}/{default_split(protocol, split)} results for dataset {dataset!r}: "
            f"{run_command(dataset, protocol)} makes them"
        )
    values = sel.groupby(["case_id", "arch"])[metric].mean().unstack("arch")
    scored = sel.groupby(["case_id", "arch"]).size().unstack("arch").reindex_like(values).notna()
    n_models = sel.drop_duplicates(["arch", *_MODEL_KEYS]).groupby("arch").size()
    if unit == "patient" and ("patient" not in sel.columns or sel["patient"].isna().any()):
        raise InvalidInput(
            f"--unit patient needs each image's patient, which a layout records in a file of its own "
            f"({_patient_records()}; real data only); {canonical_dataset(dataset)} has none: use --unit group"
        )
    groups = _groups(sel, "patient" if unit == "patient" else "group").reindex(values.index)
    grouped = bool(groups.duplicated().any())
    text = unit_of_analysis(
        protocol,
        default_split(protocol, split),
        int(sel["seed"].nunique()),
        dataset=canonical_dataset(dataset),
        unit=unit,
        grouped=grouped,
    )
    return PerImage(values, scored, n_models, text, groups, unit)


def _groups(sel: pd.DataFrame, column: str = "group") -> pd.Series:
    """case_id -> group (the case itself where no ``column``); a case in two groups is an error."""
    if column not in sel.columns:
        ids = pd.Index(sel["case_id"].unique())
        return pd.Series(ids, index=ids)
    pairs = sel[["case_id", column]].drop_duplicates()
    dup = pairs[pairs["case_id"].duplicated(keep=False)]
    if len(dup):
        raise NoResults(f"cases recorded in more than one {column}: {_ids(sorted(dup['case_id'].unique()))}")
    return pairs.set_index("case_id")[column].astype(str)


def paired_vectors(data: PerImage, ref: str, other: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Aligned (ref, other) vectors over the units of analysis, sorted (by case_id or group); refuses
    unmatched case_id sets (listing them); drops image pairs where either value is NaN before any
    group mean and returns how many."""
    has_ref = set(data.scored.index[data.scored[ref]])
    has_other = set(data.scored.index[data.scored[other]])
    if has_ref != has_other:
        only_ref, only_other = sorted(has_ref - has_other), sorted(has_other - has_ref)
        raise NoResults(
            f"unmatched images between {ref!r} and {other!r}: {len(only_ref)} only in {ref} "
            f"{_ids(only_ref)}, {len(only_other)} only in {other} {_ids(only_other)}"
        )
    ids = sorted(has_ref)
    a, b = data.values.loc[ids, ref].to_numpy(float), data.values.loc[ids, other].to_numpy(float)
    keep = ~(np.isnan(a) | np.isnan(b))
    if data.level != "image" and data.groups is not None:
        frame = pd.DataFrame({"g": data.groups.loc[ids].to_numpy()[keep], "a": a[keep], "b": b[keep]})
        means = frame.groupby("g", sort=True)[["a", "b"]].mean()
        return means["a"].to_numpy(), means["b"].to_numpy(), int((~keep).sum())
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
    return {
        **row,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "d_z": d_z,
        "statistic": float(res.statistic),
        "p_raw": float(res.pvalue),
    }


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else np.nan


def adjust(p: Sequence[float], correction: str = "holm", alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted p, significant) with statsmodels' ``multipletests``; NaN p-values stay NaN and not significant."""
    if correction not in CORRECTIONS:
        raise InvalidInput(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    p = np.asarray(p, dtype=float)
    p_adj, sig = p.copy(), np.zeros(len(p), dtype=bool)
    ok = ~np.isnan(p)
    if correction == "none":
        sig[ok] = p[ok] <= alpha
    elif ok.any():
        sig[ok], p_adj[ok] = multipletests(p[ok], alpha=alpha, method=correction)[:2]
    return p_adj, sig


def paired_test(
    df: pd.DataFrame,
    *,
    dataset: str,
    metric: str = "iou",
    reference: str = REFERENCE,
    against: str | Sequence[str] | None = None,
    protocol: str = "cv",
    split: str | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    unit: str = "group",
) -> pd.DataFrame:
    """Paired tests of ``reference`` against each arch in ``against`` (default: every other arch present),
    over the units of analysis ``unit`` (``group``: patients / source images; ``image``: every image).

    One row per comparison (columns ``RESULT_COLUMNS``); ``mean_diff`` = reference - other, so a
    positive difference favours the reference for dice/iou and the other arch for hd/hd95.
    """
    if test not in TESTS:
        raise InvalidInput(f"test must be one of {TESTS}, got {test!r}")
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, split=split, unit=unit)
    rows = []
    for other in _others(data.values.columns, reference, against):
        a, b, n_excluded = paired_vectors(data, reference, other)
        n_images = int(data.scored[reference].sum()) - n_excluded
        rows.append(
            {
                "dataset": canonical_dataset(dataset),
                "metric": metric,
                "reference": reference,
                "other": other,
                **_compare(a, b, test),
                "n_excluded": n_excluded,
                "models_ref": int(data.n_models[reference]),
                "models_other": int(data.n_models[other]),
                "n_images": n_images,
            }
        )
    out = pd.DataFrame(rows)
    out["p_adj"], out["significant"] = adjust(out["p_raw"], correction, alpha)
    out["test"], out["correction"], out["alpha"], out["unit"] = test, correction, alpha, data.unit
    out["unit_level"] = data.level if data.grouped else "image"
    _warn_small(out, data.unit)
    return out[RESULT_COLUMNS]


def _others(present: pd.Index, reference: str, against: str | Sequence[str] | None) -> list[str]:
    if reference not in present:
        raise NoResults(f"reference arch {reference!r} has no results here; present: {', '.join(present)}")
    if against is None:
        against = [a for a in present if a != reference]
    wanted = [against] if isinstance(against, str) else list(against)
    missing = [a for a in wanted if a not in present]
    if missing:
        raise NoResults(f"no results for {', '.join(missing)}; present: {', '.join(present)}")
    others = [a for a in wanted if a != reference]
    if not others:
        raise InvalidInput(f"nothing to compare {reference!r} against (against={against!r})")
    return others


def _warn_small(out: pd.DataFrame, unit: str) -> None:
    small = out[out["n"] <= MIN_UNITS]
    if len(small):
        warnings.warn(
            f"paired test on n <= {MIN_UNITS} units ({unit}; {', '.join(small['other'])}): far too few "
            "independent units for a meaningful test",
            stacklevel=3,
        )


def paired_tests(df: pd.DataFrame, datasets: Sequence[str] | None = None, **kwargs: object) -> pd.DataFrame:
    """``paired_test`` for each dataset (default: every dataset with results for the protocol); the
    correction applies within each dataset, as the paper's per-panel Fig. 8 tests."""
    protocol = str(kwargs.get("protocol", "cv"))
    split = default_split(protocol, kwargs.get("split"))  # type: ignore[arg-type]
    names = datasets or sorted(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique())
    frames = [paired_test(df, dataset=d, **kwargs) for d in names]  # type: ignore[arg-type]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RESULT_COLUMNS)


FOLD_COLUMNS = [
    "dataset",
    "metric",
    "reference",
    "other",
    "n_folds",
    "mean_diff",
    "ci_low",
    "ci_high",
    "statistic",
    "p_raw",
    "p_adj",
    "significant",
    "test_train_ratio",
    "test",
    "correction",
    "alpha",
    "unit",
]


def fold_level_test(
    df: pd.DataFrame,
    *,
    dataset: str,
    metric: str = "iou",
    reference: str = REFERENCE,
    against: str | Sequence[str] | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Corrected resampled t-test (Nadeau and Bengio 2003) over the ``cv`` fold models.

    For each fold model j (a fold and seed), d_j = reference's mean over the images it scored minus the
    other arch's; t = mean(d) / sqrt((1/J + n_test/n_train) s^2) with J fold models, s^2 the sample
    variance of d and n_test/n_train the mean ratio of a fold model's scored images to the images
    outside its fold (the training folds, inner validation part included); J - 1 degrees of freedom
    (scipy.stats.t). The 1/J + n_test/n_train factor (instead of 1/J) corrects the variance for the
    training sets the fold models share. One row per comparison (``FOLD_COLUMNS``), Holm across them.
    """
    sel = select(df, dataset=dataset, protocol="cv")
    if sel.empty:
        raise NoResults(f"no cv results for dataset {dataset!r}: {run_command(dataset, 'cv')} makes them")
    per_model = sel.groupby(["arch", *_MODEL_KEYS])[metric].mean().unstack("arch")
    n_test = sel.drop_duplicates([*_MODEL_KEYS, "case_id"]).groupby(_MODEL_KEYS).size().reindex(per_model.index)
    n_total = sel["case_id"].nunique()
    ratio = float(np.mean(n_test / (n_total - n_test)))
    rows = []
    for other in _others(per_model.columns, reference, against):
        d = (per_model[reference] - per_model[other]).dropna().to_numpy(float)
        rows.append(
            {
                "dataset": canonical_dataset(dataset),
                "metric": metric,
                "reference": reference,
                "other": other,
                **_corrected_resampled(d, ratio),
                "test_train_ratio": ratio,
            }
        )
    out = pd.DataFrame(rows)
    out["p_adj"], out["significant"] = adjust(out["p_raw"], correction, alpha)
    out["test"], out["correction"], out["alpha"] = NADEAU_BENGIO, correction, alpha
    out["unit"] = "fold models (cv): each fold model's mean over its out-of-fold images"
    return out[FOLD_COLUMNS]


def _corrected_resampled(d: np.ndarray, ratio: float) -> dict[str, float]:
    n = len(d)
    mean = float(np.mean(d)) if n else np.nan
    if n < 2:
        return {
            "n_folds": n,
            "mean_diff": mean,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "statistic": np.nan,
            "p_raw": np.nan,
        }
    se = float(np.sqrt((1.0 / n + ratio) * np.var(d, ddof=1)))
    t = mean / se if se > 0 else np.nan
    half = float(sps.t.ppf(0.975, n - 1)) * se
    p = float(2 * sps.t.sf(abs(t), n - 1)) if se > 0 else np.nan
    return {"n_folds": n, "mean_diff": mean, "ci_low": mean - half, "ci_high": mean + half, "statistic": t, "p_raw": p}


def stars(p: float) -> str:
    """'***' p <= 0.001, '**' <= 0.01, '*' <= 0.05, 'ns' otherwise (NaN: 'n/a')."""
    if p is None or np.isnan(p):
        return "n/a"
    return "***" if p <= 0.001 else "**" if p <= 0.01 else "*" if p <= 0.05 else "ns"


def ranks(means: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Rank archs within each dataset (1 = best; higher is better for dice/iou, lower for distances).

    ``means`` has columns dataset, arch and ``metric``; ties share the average rank.
    """
    ascending = not higher_is_better(metric)
    out = means.copy()
    out["rank"] = out.groupby("dataset")[metric].rank(ascending=ascending, method="average")
    return out
