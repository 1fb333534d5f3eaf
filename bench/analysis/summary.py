"""The end-of-run summary: mean Dice / IoU / HD per architecture and dataset, with the fold models
that did not learn marked (``bench.analysis.learning``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.analysis.learning import COLUMN, RULES, grouped_lines
from bench.results.store import load_all, sidecars


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over images of each (dataset, arch): the test set for holdout jobs, out-of-fold for cv."""
    if df.empty:
        return pd.DataFrame()
    from bench.analysis.stats import at_report_resolution

    scored = df[((df["protocol"] == "cv") | (df["split"] == "test")) & at_report_resolution(df)]
    return (
        scored.groupby(["dataset", "source", "protocol", "arch"])[["dice", "iou", "hd"]]
        .mean()
        .reset_index()
        .sort_values(["dataset", "arch"])
    )


def learning_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, source, protocol, arch): ``n_models`` fold models and how many of them did not learn
    (``not_learned``; NA when the results predate the flag)."""
    cols = ["dataset", "source", "protocol", "arch"]
    flag = df[COLUMN] if COLUMN in df else pd.Series(pd.NA, index=df.index)
    per_job = df[[*cols, "job_key"]].assign(flag=flag.astype("boolean")).groupby([*cols, "job_key"])["flag"].first()
    return (
        per_job.groupby(level=cols)
        .agg(n_models="size", not_learned=lambda s: s.sum() if s.notna().all() else pd.NA)
        .reset_index()
    )


def summary_with_learning(df: pd.DataFrame) -> pd.DataFrame:
    """``summary_table`` plus the ``learning_counts`` of the same fold models."""
    table = summary_table(df)
    if table.empty:
        return table
    scored = df[(df["protocol"] == "cv") | (df["split"] == "test")]
    return table.merge(learning_counts(scored), on=["dataset", "source", "protocol", "arch"], how="left")


def _mark(not_learned: object, n_models: int) -> str:
    if pd.isna(not_learned):
        return "not recorded"
    return f"! {int(not_learned)}/{n_models} did not learn" if not_learned else ""


def format_summary(table: pd.DataFrame) -> str:
    """The table as text; a row with fold models that did not learn says how many, after a ``!``."""
    shown = table.drop(columns=["n_models", "not_learned"])
    shown["learning"] = [_mark(bad, n) for bad, n in zip(table["not_learned"], table["n_models"])]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4f}")


def print_summary(results: Path, keys: set[str] | None = None) -> None:
    df = load_all(results)
    if keys is not None and not df.empty:
        df = df[df["job_key"].isin(keys)]
    table = summary_with_learning(df)
    if table.empty:
        print("no finished jobs to summarise")
        return
    print("\nMean per image (holdout: test set over fold models; cv: out-of-fold):")
    print(format_summary(table))
    for line in not_learned_lines(results, set(df["job_key"])):
        print(line)


def not_learned_lines(results: Path, keys: set[str]) -> list[str]:
    """A heading and one line per dataset x architecture of ``keys`` with fold models that did not learn:
    how many, which, and the kinds of reason (``bench.analysis.learning.grouped_lines``)."""
    bad = [
        s
        for s in sidecars(results)
        if s.get("key") in keys and s.get("status") == "ok" and (s.get("learning") or {}).get("did_not_learn")
    ]
    if not bad:
        return []
    head = (
        f"\n! {len(bad)} of {len(keys)} fold models did not learn ({RULES}); their numbers are no "
        "evidence about the architecture (every reason: `bench report --table learning`):"
    )
    return [head] + [f"  {line}" for line in grouped_lines(bad)]
