"""The paired tests of ``bench.analysis.stats`` as a reader sees them: aligned text, CSV, Markdown or
LaTeX, always with the unit of analysis, the test and the mean difference with its 95% CI."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.stats import RANDOMNESS_NOTE, stars
from bench.errors import InvalidInput
from bench.report.table_render import render


def format_tests(df: pd.DataFrame, fmt: str = "text") -> str:
    """Render ``paired_test`` (or ``fold_level_test``) output as aligned text, CSV, Markdown or LaTeX;
    the unit of analysis, the test and the mean difference with its 95% CI are always stated."""
    if fmt == "csv":  # the caveats as a leading comment line, as every rendered CSV table has its caption
        caveats = _caveats(df)
        return ("# " + "; ".join(caveats) + "\n" if caveats else "") + df.to_csv(index=False)
    if fmt not in ("text", "md", "latex"):
        raise InvalidInput(f"fmt must be text, csv, md or latex, got {fmt!r}")
    fold = "test_train_ratio" in df.columns  # fold_level_test output
    shown = pd.DataFrame(
        {
            "dataset": df["dataset"],
            "metric": df["metric"],
            "comparison": df["reference"] + " vs " + df["other"],
            "n": (df["n_folds"] if fold else df["n"]).astype(int),
            **({"n used": df["n_used"].astype(int)} if _wilcoxon(df) else {}),
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
            **(_fold_columns(df) if "p_folds" in df and df["p_folds"].notna().any() else {}),
            **({"verdict": df["verdict"]} if "verdict" in df else {}),
            **({"note": df["note"].fillna("")} if "note" in df and df["note"].fillna("").str.len().any() else {}),
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
    notes += _caveats(df)
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


def _wilcoxon(df: pd.DataFrame) -> bool:
    return "n_used" in df and bool((df["test"] == "wilcoxon").any())


def _fold_columns(df: pd.DataFrame) -> dict[str, object]:
    return {
        "n folds": df["n_folds"].map(lambda v: "–" if pd.isna(v) else str(int(v))),
        "p folds": df["p_folds"].map(_p),
        "p adj folds": df["p_adj_folds"].map(_p),
    }


def _caveats(df: pd.DataFrame) -> list[str]:
    """The lines under a tests table that qualify its verdicts."""
    out = []
    if "p_folds" in df and df["p_folds"].notna().any():
        out.append(
            "p folds: the fold-level corrected resampled t-test (Nadeau & Bengio 2003; includes training "
            "variability); the verdict is the more conservative of the unit-level and the fold-level tests"
        )
    if "unit" in df and df["unit"].astype(str).str.contains("holdout").any():
        out.append(RANDOMNESS_NOTE)
    if _wilcoxon(df):
        zeros = int(df["n_zero"].sum())
        out.append(
            f"Wilcoxon: n used = units with a non-zero difference; {zeros} zero difference(s) dropped, as scipy does"
        )
    if "did_not_learn" in df and df["did_not_learn"].any():
        out.append(
            "a comparison with a model that did not learn gets no verdict: it is a comparison with a trivial predictor"
        )
    if "floor_mean" in df and df["floor_mean"].notna().any():
        floors = sorted(
            {
                f"{d}: {str(f).replace('_', ' ')} {v:.4f}"
                for d, f, v in zip(df["dataset"], df["floor"], df["floor_mean"])
            }
        )
        out.append("better trivial floor over the same units: " + "; ".join(floors))
    return out


def _p(p: float) -> str:
    return "nan" if pd.isna(p) else f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"
