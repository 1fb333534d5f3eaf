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
- Wilcoxon drops zero differences (scipy's default ``zero_method="wilcox"``): ``n_used`` is the n it
  used, ``n_zero`` how many were dropped (for the t-test ``n_used == n``).
- Both architectures must have the same number of fold models (a missing fold changes what a mean
  averages over): unequal counts are refused, naming them, unless ``allow_unequal_folds`` (then noted).
- Every comparison carries what qualifies it (``note``, ``verdict``): a fold model that did not learn
  (``bench.analysis.learning``; the comparison is then with a trivial predictor, and ``verdict`` gives
  none) and the better trivial floor over the same units (``floor``, ``floor_mean``); every holdout
  output (tests table caption, ``bench ttest``, Fig. 8) says that training randomness is not in the test
  (``RANDOMNESS_NOTE``). Under ``cv`` the fold-level
  corrected test (``fold_level_test``) stands beside the unit-level one and ``significant`` is the more
  conservative of the two (``significant_units``, ``significant_folds``).
- ``paired_tests(..., family="all")``: the correction runs over every dataset x comparison of the call.
- Every comparison refuses architectures whose jobs differ in anything but the architecture
  (``bench.results.selection.check_like_for_like``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from bench.analysis.floors import FLOORS, trivial_scores
from bench.analysis.learning import flag_text, model_flags, not_learned
from bench.analysis.seeds import collapse_seeds, fold_unit_suffix
from bench.datasets import canonical_name, dataset_info
from bench.errors import InvalidInput, NoResults, UnknownName
from bench.metrics import higher_is_better
from bench.results.selection import check_like_for_like
from bench.results.store import ResultWarning

#: The paper's proposed network: the default reference of the paired tests and of Fig. 8.
REFERENCE = "mildnet"
TESTS = ("t", "wilcoxon")
UNITS = ("group", "image", "patient")  # patient: as the dataset layout records it (column ``patient``)
NADEAU_BENGIO = (
    "corrected resampled t (Nadeau C. & Bengio Y. 2003, Inference for the generalization error, "
    "Machine Learning 52:239-281)"
)
CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")
#: Over which comparisons a correction runs: each dataset's (the paper's per-panel tests) or all of the call's.
FAMILIES = ("dataset", "all")
MIN_UNITS = 5  # n <= MIN_UNITS warns
#: What every holdout test output says: the test pairs images, not training runs.
RANDOMNESS_NOTE = (
    "training randomness is not included (holdout: each image's value is averaged over the fold models, "
    "which share one split; the test pairs images, not training runs): include it with cv "
    "(`--protocol cv`, whose fold-level corrected test is shown beside) or several seeds (`--seeds 0,1,2`)"
)


class AnalysisWarning(ResultWarning):
    """A caveat about a number a reader sees (too few units, a fold model left out): one line,
    ``bench: warning: ...``, on the command line."""


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
    "n_used",
    "n_zero",
    "floor",
    "floor_mean",
    "did_not_learn",
    "significant_units",
    "n_folds",
    "p_folds",
    "p_adj_folds",
    "significant_folds",
    "verdict",
    "note",
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
    rows: pd.DataFrame | None = None  # the selected per-image rows (flags and floors are read from them)

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
    return PerImage(values, scored, n_models, text, groups, unit, sel)


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
    diff = a - b
    n_zero = int((diff == 0).sum())
    row: dict[str, float] = {
        "n": n,
        "mean_ref": _mean(a),
        "mean_other": _mean(b),
        "mean_diff": _mean(diff),
        "n_used": n - n_zero if test == "wilcoxon" else n,  # scipy's wilcoxon drops zero differences
        "n_zero": n_zero,
    }
    if n < 2:
        return {**row, "ci_low": np.nan, "ci_high": np.nan, "d_z": np.nan, "statistic": np.nan, "p_raw": np.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero-variance differences: scipy returns nan
        warnings.simplefilter("ignore", UserWarning)  # wilcoxon on few non-zero differences: n_used says so
        tt = sps.ttest_rel(a, b)
        ci = tt.confidence_interval(0.95)
        res = tt if test == "t" else _wilcoxon(a, b, n - n_zero)
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


def _wilcoxon(a: np.ndarray, b: np.ndarray, n_used: int) -> Any:
    """scipy's Wilcoxon signed-rank test; with no non-zero difference it is undefined (NaN statistic and p)."""
    if n_used == 0:
        return _NanResult()
    return sps.wilcoxon(a, b)


@dataclass(frozen=True)
class _NanResult:
    statistic: float = np.nan
    pvalue: float = np.nan


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
    allow_unequal_folds: bool = False,
    fold_level: bool = True,
) -> pd.DataFrame:
    """Paired tests of ``reference`` against each arch in ``against`` (default: every other arch present),
    over the units of analysis ``unit`` (``group``: patients / source images; ``image``: every image).

    One row per comparison (columns ``RESULT_COLUMNS``); ``mean_diff`` = reference - other, so a
    positive difference favours the reference for dice/iou and the other arch for hd/hd95. Under ``cv``
    (and ``fold_level``) the fold-level corrected test of the same comparisons is attached
    (``n_folds``, ``p_folds``, ``p_adj_folds``, ``significant_folds``) and ``significant`` is the more
    conservative verdict; see the module docstring for ``note``, ``verdict`` and the floors.
    """
    if test not in TESTS:
        raise InvalidInput(f"test must be one of {TESTS}, got {test!r}")
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, split=split, unit=unit)
    flags = model_flags(data.rows) if data.rows is not None else pd.DataFrame()
    floor, floor_mean = better_floor(data, metric)
    name = canonical_dataset(dataset)
    rows = []
    for other in _others(data.values.columns, reference, against):
        unequal = check_equal_folds(data, reference, other, allow_unequal_folds)
        a, b, n_excluded = paired_vectors(data, reference, other)
        n_images = int(data.scored[reference].sum()) - n_excluded
        flagged = [
            f"{arch}: {flag_text(flags, name, arch)}" for arch in (reference, other) if not_learned(flags, name, arch)
        ]
        rows.append(
            {
                "dataset": name,
                "metric": metric,
                "reference": reference,
                "other": other,
                **_compare(a, b, test),
                "n_excluded": n_excluded,
                "models_ref": int(data.n_models[reference]),
                "models_other": int(data.n_models[other]),
                "n_images": n_images,
                "floor": floor,
                "floor_mean": floor_mean,
                "did_not_learn": bool(flagged),
                "note": _join(*flagged, unequal),
            }
        )
    out = pd.DataFrame(rows)
    out["test"], out["correction"], out["alpha"], out["unit"] = test, correction, alpha, data.unit
    out["unit_level"] = data.level if data.grouped else "image"
    out["n_folds"], out["p_folds"], out["p_adj_folds"] = np.nan, np.nan, np.nan
    out["significant_folds"] = pd.array([pd.NA] * len(out), dtype="boolean")
    if protocol == "cv" and fold_level:
        folds = fold_level_test(
            df, dataset=dataset, metric=metric, reference=reference, against=list(out["other"]), alpha=alpha
        )
        out["n_folds"] = folds["n_folds"].to_numpy(float)
        out["p_folds"] = folds["p_raw"].to_numpy(float)
    out = apply_correction(out, correction, alpha)
    _warn_small(out, data.unit)
    return out[RESULT_COLUMNS]


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def apply_correction(out: pd.DataFrame, correction: str, alpha: float) -> pd.DataFrame:
    """``p_adj`` (and ``p_adj_folds``) over all rows of ``out`` as one family, then the verdicts:
    ``significant_units`` at unit level, ``significant_folds`` at fold level (cv), ``significant`` the more
    conservative of the two, and ``verdict`` in words."""
    out = out.copy()
    out["p_adj"], out["significant_units"] = adjust(out["p_raw"], correction, alpha)
    out["correction"] = correction
    has_folds = out["n_folds"].notna()
    if has_folds.any():
        p_adj, sig = adjust(out["p_folds"], correction, alpha)
        out["p_adj_folds"] = np.where(has_folds, p_adj, np.nan)
        out["significant_folds"] = pd.array([bool(s) if h else pd.NA for s, h in zip(sig, has_folds)], dtype="boolean")
    folds = out["significant_folds"].astype("boolean").fillna(True).astype(bool)
    out["significant"] = out["significant_units"].astype(bool) & folds
    out["verdict"] = [_verdict(r) for r in out.itertuples()]
    return out


def _verdict(r: Any) -> str:
    """The verdict a reader reads, in words."""
    if r.did_not_learn:
        return "no verdict: a model did not learn (the comparison is with a trivial predictor)"
    if pd.isna(r.significant_folds):
        return "significant" if r.significant else "not significant"
    if r.significant_units and r.significant_folds:
        return "significant at unit and fold level"
    if not r.significant_units and not r.significant_folds:
        return "not significant at unit or fold level"
    level = "fold" if r.significant_units else "unit"
    return f"not significant: the more conservative verdict (not significant at {level} level)"


def check_equal_folds(data: PerImage, reference: str, other: str, allow: bool = False) -> str:
    """Refuse (``InvalidInput``) a comparison whose architectures have unequal numbers of fold models,
    naming them with their folds; with ``allow`` return the note that says so ("" when equal)."""
    n_ref, n_other = int(data.n_models[reference]), int(data.n_models[other])
    if n_ref == n_other:
        return ""
    folds = _fold_lists(data.rows, (reference, other)) if data.rows is not None else {}
    shown = ", ".join(f"{a} {n} fold model(s){folds.get(a, '')}" for a, n in ((reference, n_ref), (other, n_other)))
    if allow:
        return f"unequal fold models ({shown}), compared anyway (--allow-unequal-folds)"
    raise InvalidInput(
        f"unequal numbers of fold models: {shown}; each mean would average over different training runs. "
        "Run the missing jobs (`bench status` lists them), or pass --allow-unequal-folds (noted in the output)"
    )


def _fold_lists(rows: pd.DataFrame, archs: Sequence[str]) -> dict[str, str]:
    out = {}
    for arch in archs:
        models = rows.loc[rows["arch"] == arch, _MODEL_KEYS].drop_duplicates().sort_values(_MODEL_KEYS)
        folds = [str(int(r.fold)) + (f"/seed {int(r.seed)}" if r.seed else "") for r in models.itertuples()]
        out[arch] = f" (fold{'s' if len(folds) > 1 else ''} {', '.join(folds)})"
    return out


def floor_values(data: PerImage, metric: str) -> dict[str, pd.Series]:
    """Each trivial floor's value per unit of analysis of ``data`` (index as ``unit_values``); a floor whose
    ``metric`` is not derivable from counts on some image (HD of all foreground) is left out."""
    if data.rows is None or data.rows.empty or metric not in ("dice", "iou", "hd", "hd95"):
        return {}
    images = data.rows.drop_duplicates("case_id").set_index("case_id", drop=False).reindex(data.values.index)
    out = {}
    for floor in FLOORS:
        v = pd.Series(trivial_scores(images, floor)[metric], index=data.values.index, dtype=float)
        if v.isna().any():
            continue
        if data.level != "image" and data.groups is not None:
            v = v.groupby(data.groups.reindex(v.index)).mean()
        out[floor] = v
    return out


def better_floor(data: PerImage, metric: str) -> tuple[str, float]:
    """(name, mean over the units) of the better trivial floor of ``data`` on ``metric`` ("", NaN when none)."""
    means = {f: float(v.mean()) for f, v in floor_values(data, metric).items()}
    if not means:
        return "", np.nan
    pick = max if higher_is_better(metric) else min
    best = pick(means, key=lambda f: means[f])
    return best, means[best]


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
            f"{small['dataset'].iloc[0]}: paired test on n <= {MIN_UNITS} units ({unit}; "
            f"{', '.join(small['other'])}): far too few independent units for a meaningful test",
            AnalysisWarning,
            stacklevel=3,
        )


def paired_tests(
    df: pd.DataFrame, datasets: Sequence[str] | None = None, *, family: str = "dataset", **kwargs: Any
) -> pd.DataFrame:
    """``paired_test`` for each dataset (default: every dataset with results for the protocol). The
    correction runs within each dataset (``family="dataset"``, as the paper's per-panel Fig. 8 tests) or
    over every dataset x comparison of the call (``family="all"``). Several datasets must share one
    training recipe (``bench.analysis.across.check_across_datasets``)."""
    from bench.analysis.across import check_across_datasets

    if family not in FAMILIES:
        raise InvalidInput(f"family must be one of {FAMILIES}, got {family!r}")
    protocol = str(kwargs.get("protocol", "cv"))
    split = default_split(protocol, kwargs.get("split"))  # type: ignore[arg-type]
    names = datasets or sorted(df.loc[(df["protocol"] == protocol) & (df["split"] == split), "dataset"].unique())
    if len(names) > 1:
        shown = (df["protocol"] == protocol) & (df["split"] == split)
        check_across_datasets(df[shown & df["dataset"].isin([canonical_dataset(d) for d in names])], "paired tests")
    frames = [paired_test(df, dataset=d, **kwargs) for d in names]
    if not frames:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "family"])
    out = pd.concat(frames, ignore_index=True)
    if family == "all":
        out = apply_correction(out, str(kwargs.get("correction", "holm")), float(kwargs.get("alpha", 0.05)))
    out["family"] = family
    return out


def family_text(out: pd.DataFrame) -> str:
    """How the p-values of ``paired_tests`` output were corrected, in words."""
    if out.empty:
        return ""
    correction = str(out["correction"].iloc[0])
    method = {"holm": "Holm", "bonferroni": "Bonferroni", "fdr_bh": "Benjamini-Hochberg (FDR)"}.get(correction)
    if method is None:
        return "no correction for multiple comparisons"
    if "family" in out and (out["family"] == "all").all():
        return f"{method} over all {len(out)} dataset x comparison tests of the call"
    return f"{method} within each dataset"


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
    "ratio_basis",
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
    its weights were fitted on (``n_fit``: the training folds minus the inner validation part that chose
    the epoch, which is not training data); J - 1 degrees of freedom (scipy.stats.t). The 1/J +
    n_test/n_train factor (instead of 1/J) corrects the variance for the training sets the fold models
    share. ``n_fit`` comes from each job's record (column ``n_fit``, ``attach_fit_sizes``); without it,
    it is estimated from the recorded ``inner_fraction``, and without that the whole training folds are
    counted; ``ratio_basis`` says which. One row per comparison (``FOLD_COLUMNS``), Holm across them.
    """
    sel = collapse_seeds(select(df, dataset=dataset, protocol="cv"))  # seeds nested within the fold
    if sel.empty:
        raise NoResults(f"no cv results for dataset {dataset!r}: {run_command(dataset, 'cv')} makes them")
    per_model = sel.groupby(["arch", *_MODEL_KEYS])[metric].mean().unstack("arch")
    ratio, basis = fit_ratio(sel, per_model.index)
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
                "ratio_basis": basis,
            }
        )
    out = pd.DataFrame(rows)
    out["p_adj"], out["significant"] = adjust(out["p_raw"], correction, alpha)
    out["test"], out["correction"], out["alpha"] = NADEAU_BENGIO, correction, alpha
    out["unit"] = "fold models (cv): each fold model's mean over its out-of-fold images" + fold_unit_suffix(sel)
    return out[FOLD_COLUMNS]


def fit_ratio(sel: pd.DataFrame, models: pd.Index) -> tuple[float, str]:
    """(mean n_test / n_fit over the fold models ``models`` of the cv rows ``sel``, how n_fit was known)."""
    n_test = sel.drop_duplicates([*_MODEL_KEYS, "case_id"]).groupby(_MODEL_KEYS).size().reindex(models)
    outside = sel["case_id"].nunique() - n_test
    if "n_fit" in sel.columns and sel["n_fit"].notna().all():
        n_fit = sel.groupby(_MODEL_KEYS)["n_fit"].first().reindex(models).astype(float)
        return float(
            np.mean(n_test / n_fit)
        ), "n_fit: each fold model's fitted images (inner validation part not counted)"
    if "inner_fraction" in sel.columns and sel["inner_fraction"].notna().all():
        inner = float(sel["inner_fraction"].iloc[0])
        return float(np.mean(n_test / (outside * (1 - inner)))), (
            f"n_fit estimated as (1 - inner_fraction {inner:g}) of the training folds (fitted sizes not recorded)"
        )
    return float(np.mean(n_test / outside)), (
        "n_fit: the whole training folds, inner validation part included (fitted sizes not recorded; p slightly small)"
    )


def attach_fit_sizes(df: pd.DataFrame, sidecars: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """``df`` with ``n_fit`` per row: the number of images its job's weights were fitted on (the sidecar's
    ``n_train``: under cv the training folds minus the inner validation part). Rows of jobs without a
    record get NaN."""
    if df.empty or "job_key" not in df.columns:
        return df
    sizes = {s.get("key"): s.get("n_train") for s in sidecars if s.get("status") == "ok" and "n_train" in s}
    return df.assign(n_fit=df["job_key"].map(sizes).astype(float))


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
