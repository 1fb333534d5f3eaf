"""The paired tests of ``bench.analysis.stats`` as a reader sees them: aligned text, CSV, Markdown or
LaTeX, always with the unit of analysis, the test and the mean difference with its 95% CI."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.stats import stars
from bench.errors import InvalidInput
from bench.report.table_render import render


def format_tests(df: pd.DataFrame, fmt: str = "text") -> str:
    """Render ``paired_test`` (or ``fold_level_test``) output as aligned text, CSV, Markdown or LaTeX;
    the unit of analysis, the test and the mean difference with its 95% CI are always stated."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt not in ("text", "md", "latex"):
        raise InvalidInput(f"fmt must be text, csv, md or latex, got {fmt!r}")
    fold = "n_folds" in df.columns
    shown = pd.DataFrame(
        {
            "dataset": df["dataset"],
            "metric": df["metric"],
            "comparison": df["reference"] + " vs " + df["other"],
            "n": (df["n_folds"] if fold else df["n"]).astype(int),
            **(
                {}
                if fold
                else {
                    "mean ref": df["mean_ref"].map("{:.4f}".format),
                    "mean other": df["mean_other"].map("{:.4f}".format),
                }
            ),
            "mean diff": df["mean_diff"].map("{:+.4f}".format),
            "95% CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(df["ci_low"], df["ci_high"])],
            **({} if fold else {"d_z": df["d_z"].map("{:.2f}".format)}),
            "statistic": df["statistic"].map("{:.3f}".format),
            "p": df["p_raw"].map(_p),
            "p adj": df["p_adj"].map(_p),
            "": [stars(p) if s or np.isnan(p) else "ns" for p, s in zip(df["p_adj"], df["significant"])],
        }
    )
    notes = sorted(
        {
            f"{t} test, {c} correction, alpha {a:g}; unit: {u}"
            for t, c, a, u in zip(df["test"], df["correction"], df["alpha"], df["unit"])
        }
    )
    notes.append(
        "mean diff = reference - other, in the metric's units per unit of analysis, with its t-based 95% CI"
        + ("" if not fold else " (corrected variance)")
    )
    excluded = int(df["n_excluded"].sum()) if "n_excluded" in df else 0
    if excluded:
        notes.append(f"{excluded} image pairs excluded for a NaN value (empty-mask exclusion rule)")
    if fmt == "latex":
        return render(shown.rename(columns={"": "sig."}), "latex", caption="; ".join(notes), bold=[])
    if fmt == "md":
        head = "| " + " | ".join(shown.columns) + " |\n|" + "---|" * len(shown.columns) + "\n"
        body = "".join("| " + " | ".join(map(str, r)) + " |\n" for r in shown.itertuples(index=False))
        return head + body + "\n" + "\n".join(f"*{n}*" for n in notes) + "\n"
    return shown.to_string(index=False) + "\n" + "\n".join(notes) + "\n"


def _p(p: float) -> str:
    return "nan" if np.isnan(p) else f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"
