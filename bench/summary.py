"""The end-of-run summary: mean Dice / IoU / HD per architecture and dataset."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store import load_all


def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean over images of each (dataset, arch): the test set for holdout jobs, out-of-fold for cv."""
    if df.empty:
        return pd.DataFrame()
    from bench.stats import at_report_resolution

    scored = df[((df["protocol"] == "cv") | (df["split"] == "test")) & at_report_resolution(df)]
    return (scored.groupby(["dataset", "source", "protocol", "arch"])[["dice", "iou", "hd"]]
            .mean().reset_index().sort_values(["dataset", "arch"]))


def print_summary(results: Path, keys: set[str] | None = None) -> None:
    df = load_all(results)
    if keys is not None and not df.empty:
        df = df[df["job_key"].isin(keys)]
    table = summary_table(df)
    if table.empty:
        print("no finished jobs to summarise")
        return
    print("\nMean per image (holdout: test set over fold models; cv: out-of-fold):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
