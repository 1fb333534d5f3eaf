"""The tests tables (``bench report --table tests`` and ``--table folds``): one row per comparison, raw
floats, with what qualifies each verdict beside it.

Every row carries the better trivial floor over the same units (``floor``, ``floor_value``: a model is
compared with it as well as with the reference), the verdict in words and a ``note`` that marks a
comparison with a model that did not learn (``bench.analysis.learning``) or unequal fold models. Under
``cv`` the fold-level corrected resampled t-test (Nadeau and Bengio 2003, ``stats.fold_level_test``) stands
beside the unit-level test and ``significant`` is the more conservative of the two; under ``holdout`` the
caption says that training randomness is not in the test and how to include it. The caption also names
the correction family (per dataset, or every dataset x comparison with ``family="all"``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.analysis import stats
from bench.analysis.names import dataset_label
from bench.analysis.tables import source_note, tests_caption
from bench.errors import NoResults

#: The compact tests table's columns, in order (cv adds the fold-level ones, Wilcoxon the n it used).
TESTS_COLUMNS = [
    "dataset",
    "arch",
    "n_units",
    "n_images",
    "mean_ref",
    "mean_other",
    "floor",
    "floor_value",
    "mean_diff",
    "ci_low",
    "ci_high",
    "d_z",
    "p_raw",
    "p_adj",
    "significant",
    "verdict",
    "note",
]
#: The fold-level (Nadeau-Bengio) test beside the unit-level one, under cv (``stats.paired_tests`` computes both).
CV_FOLD_TEST_COLUMNS = ["n_folds", "p_folds", "p_adj_folds", "significant_units", "significant_folds"]
WILCOXON_COLUMNS = ["n_used", "n_zero"]
#: Columns of ``stats.fold_level_test`` that the fold-level tests table says once, in its caption.
FOLD_CAPTION_SETTINGS = ("metric", "reference", "ratio_basis", "test", "correction", "alpha", "unit")


def tests_table(df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Paired tests, compact: one row per comparison (``TESTS_COLUMNS``), the settings in the caption.
    ``kwargs`` go to ``stats.paired_tests`` (protocol, metric, reference, unit, test, correction, family,
    allow_unequal_folds, ...); no protocol: cv if it has results, else holdout."""
    if kwargs.get("protocol") is None:
        kwargs["protocol"] = stats.resolve_protocol(df, None, None)[0]
    full = stats.paired_tests(df, **kwargs)
    if full.empty:
        raise NoResults(f"no {kwargs['protocol']} results to test")
    cols = list(TESTS_COLUMNS)
    if full["n_folds"].notna().any():
        cols[cols.index("significant") : cols.index("significant")] = CV_FOLD_TEST_COLUMNS
    if (full["test"] == "wilcoxon").any():
        cols[cols.index("n_images") + 1 : cols.index("n_images") + 1] = WILCOXON_COLUMNS
    out = full.rename(columns={"other": "arch", "n": "n_units", "floor_mean": "floor_value"})
    out = out.assign(floor=out["floor"].str.replace("_", " "))[cols].reset_index(drop=True)
    out.attrs["caption"] = tests_table_caption(full, df)
    return out


def tests_table_caption(full: pd.DataFrame, df: pd.DataFrame) -> str:
    """What was tested, how it was corrected, and every caveat the rows carry."""
    settings = sorted(
        {f"{r.test} test of {r.metric}, {r.reference} vs each model, alpha {r.alpha:g}" for r in full.itertuples()}
    )
    units = sorted({f"{dataset_label(r.dataset)}: {r.unit}" for r in full.itertuples()})
    parts = [tests_caption("; ".join(settings) + f"; correction: {stats.family_text(full)}", units, df)]
    parts.append(
        "floor, floor_value: the better trivial prediction (all foreground or all background) over the same units; "
        "a model no better than it has learned nothing the metric can see."
    )
    if full["n_folds"].notna().any():
        basis = sorted(set(_fold_basis(df, full)))
        parts.append(
            "Under cv: p_folds, p_adj_folds = the fold-level corrected resampled t-test over the fold models "
            f"({stats.NADEAU_BENGIO}; it includes training variability; {'; '.join(basis)}); significant = the "
            "more conservative of the unit-level and the fold-level verdicts (verdict says which)."
        )
    if (full["unit"].str.contains("holdout")).any():
        parts.append(f"Holdout: {stats.RANDOMNESS_NOTE}.")
    if full["did_not_learn"].any():
        pairs = ", ".join(f"{r.dataset}/{r.other}" for r in full[full["did_not_learn"]].itertuples())
        parts.append(
            f"Comparisons with a model that did not learn ({pairs}) are marked in the note and get no verdict: "
            "they compare with a trivial predictor, not with the architecture."
        )
    if (full["test"] == "wilcoxon").any():
        parts.append(
            "Wilcoxon: n_used = units with a non-zero difference (scipy drops zero differences), n_zero = dropped."
        )
    return " ".join(parts)


def _fold_basis(df: pd.DataFrame, full: pd.DataFrame) -> list[str]:
    out = []
    for ds in full["dataset"].unique():
        try:
            folds = stats.fold_level_test(df, dataset=str(ds), metric=str(full["metric"].iloc[0]))
        except (NoResults, ValueError):
            continue
        out.append(
            f"{dataset_label(str(ds))}: n_test/n_fit {folds['test_train_ratio'].iloc[0]:.3f}, "
            + str(folds["ratio_basis"].iloc[0])
        )
    return out


def fold_tests_table(df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Corrected resampled t-tests over the cv fold models, one row per (dataset, comparison)."""
    kwargs.pop("protocol", None)
    kwargs.pop("unit", None)
    for key in ("family", "test", "allow_unequal_folds"):
        kwargs.pop(key, None)
    names = sorted(df.loc[(df["protocol"] == "cv") & (df["split"] == "val"), "dataset"].unique())
    if not names:
        raise NoResults(f"no cv results: {stats.run_command(None, 'cv')} makes them")
    full = pd.concat([stats.fold_level_test(df, dataset=d, **kwargs) for d in names], ignore_index=True)
    out = full[[c for c in stats.FOLD_COLUMNS if c not in FOLD_CAPTION_SETTINGS]].rename(columns={"other": "arch"})
    basis = "; ".join(sorted(set(full["ratio_basis"])))
    out.attrs["caption"] = (
        f"Fold-level tests of {full['metric'].iloc[0]}, {full['reference'].iloc[0]} vs each "
        f"model: {stats.NADEAU_BENGIO}; variance corrected by 1/J + n_test/n_fit ({basis}); "
        f"{full['correction'].iloc[0]} correction per dataset. Unit: {full['unit'].iloc[0]}. mean_diff = reference - "
        "model with its 95% CI. " + source_note(df)
    )
    return out
