"""Rendering tables: any DataFrame of raw numbers as Markdown, LaTeX, HTML or CSV.

The builders (``bench.analysis.tables``, ``bench.datasets.summary``, ``bench.analysis.stats``, ...) return raw floats
with a caption and the cells to bold in ``df.attrs``; everything a reader sees is decided here:
"mean ± spread" pairs, rounding per metric (``bench.metrics.METRIC_LABELS``), ↑/↓ headers, display
names of datasets and architectures (``bench.analysis.names``), "–" for a missing value, bold cells.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.names import arch_label, dataset_label
from bench.errors import InvalidInput
from bench.metrics import METRIC_LABELS, higher_is_better

COLUMN_HEADERS = {
    "dataset": "Dataset",
    "arch": "Model",
    "n_models": "Fold models",
    "n_images": "Images",
    "note": "Note",
    "setting": "Setting",
    "key": "Key",
    "value": "This run",
    "paper": "Paper",
    # the tests tables (bench.analysis.comparisons)
    "n_units": "Units",
    "n_used": "Units used",
    "n_zero": "Zero diffs",
    "mean_ref": "Mean (reference)",
    "mean_other": "Mean (model)",
    "floor": "Better floor",
    "floor_value": "Floor value",
    "mean_diff": "Diff (ref. - model)",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "p_raw": "p",
    "p_adj": "p adj.",
    "n_folds": "Fold models",
    "p_folds": "p (folds)",
    "p_adj_folds": "p adj. (folds)",
    "significant_units": "Sig. (units)",
    "significant_folds": "Sig. (folds)",
    "significant": "Significant",
    "verdict": "Verdict",
    "test_train_ratio": "n_test/n_fit",
    # the rank table (bench.analysis.ranking)
    "rank": "Rank",
    "mean_rank": "Mean rank",
    "rank_low": "Rank 2.5%",
    "rank_high": "Rank 97.5%",
    "p_first": "P(first)",
    "units": "Units",
    "n_boot": "Resamples",
    "warning": "Warning",
}
#: The trivial-prediction rows of ``bench.analysis.tables.floor_rows`` (their ``arch`` value) as the tables name them.
FLOOR_LABELS = {"all_foreground": "All foreground (trivial)", "all_background": "All background (trivial)"}
DIGITS = {m: label.digits for m, label in METRIC_LABELS.items()}
MISSING = "–"


def render(
    df: pd.DataFrame,
    fmt: str = "md",
    *,
    bold: Iterable[tuple[int, str]] | None = None,
    caption: str | None = None,
    digits: dict[str, int] | None = None,
) -> str:
    """Render any table as ``md``, ``latex``, ``html`` or ``csv``.

    ``<x>_mean`` + ``<x>_std`` (or ``_pm``) become one "mean ± spread" column; ``dataset``/``arch``
    values get display names; NaN shows as "–" (the ``note`` column says why); columns starting with
    ``_`` and ``kind`` are hidden. ``bold`` holds (row position, column) pairs, column being the base
    name (``dice``); default ``df.attrs["bold"]``. ``caption`` defaults to ``df.attrs["caption"]``.
    CSV keeps the raw floats, with the caption as a leading ``# `` comment line.
    """
    caption = df.attrs.get("caption") if caption is None else caption
    if fmt == "csv":
        raw = df[[c for c in df.columns if not str(c).startswith("_")]]
        return (f"# {caption}\n" if caption else "") + raw.to_csv(index=False)
    if fmt not in _RENDERERS:
        raise InvalidInput(f"fmt must be one of md, latex, html, csv; got {fmt!r}")
    cells, headers = display_cells(df, {**DIGITS, **(digits or {})})
    marks = {(i, c) for i, c in (df.attrs.get("bold", []) if bold is None else bold)}
    return _RENDERERS[fmt](cells, headers, marks, caption)


def display_cells(df: pd.DataFrame, digits: dict[str, int]) -> tuple[pd.DataFrame, dict[str, str]]:
    """(string cells keyed by base column, base column -> header)."""
    cols = [c for c in map(str, df.columns) if not c.startswith("_") and c != "kind"]
    out, headers = {}, {}
    for c in cols:
        base, spread = _split_pair(c, cols)
        if spread == "consumed":
            continue
        if spread:
            out[base] = [_pair(m, s, _digits(base, digits)) for m, s in zip(df[c], df[spread])]
        else:
            out[base] = [_cell(c, v) for v in df[c]]
        headers[base] = _header(base)
    cells = pd.DataFrame(out, index=range(len(df)))
    if "kind" in df.columns:  # a note row (e.g. what is not comparable with the paper): only its words
        note_rows = (df["kind"] == "paper_note").to_numpy()
        for c in cells.columns:
            if c not in ("dataset", "arch", "note"):
                cells.loc[note_rows, c] = ""
    if "note" in cells and not any(cells["note"].replace(MISSING, "")):
        cells, headers = cells.drop(columns="note"), {k: v for k, v in headers.items() if k != "note"}
    if "dataset" in cells:
        cells["dataset"] = cells["dataset"].where(cells["dataset"] != cells["dataset"].shift(), "")
    return cells, headers


def _split_pair(col: str, cols: list[str]) -> tuple[str, str | None]:
    for suffix in ("_std", "_pm"):
        if col.endswith(suffix) and col[: -len(suffix)] + "_mean" in cols:
            return col, "consumed"
    if col.endswith("_mean"):
        base = col[: -len("_mean")]
        for suffix in ("_std", "_pm"):
            if base + suffix in cols:
                return base, base + suffix
        return base, None
    return col, None


def _digits(base: str, digits: dict[str, int]) -> int:
    return digits.get(base.removeprefix("paper_"), 3)


def _header(base: str) -> str:
    if base.startswith("paper_"):
        return _header(base.removeprefix("paper_")) + " (paper)"
    if base in METRIC_LABELS:
        return f"{METRIC_LABELS[base].short} {'↑' if higher_is_better(base) else '↓'}"
    if hit := _COHORT_COLUMN.match(base):  # the internal-to-external drop (bench.models.external.external_drop)
        metric, what, cohort, drop = hit.groups()
        short = METRIC_LABELS[metric].short
        return f"{short} drop" if drop else f"{short} {'floor ' if what == 'floor' else ''}({cohort})"
    if base.startswith("n_models_"):
        return f"Fold models ({base.removeprefix('n_models_')})"
    return COLUMN_HEADERS.get(base, base)


_COHORT_COLUMN = re.compile(r"^(dice|iou|hd|hd95)_(?:(mean|floor)_(internal|external)|(drop))$")


def _pair(mean: float, spread: float, digits: int) -> str:
    if pd.isna(mean):
        return MISSING
    return f"{mean:.{digits}f}" + ("" if pd.isna(spread) else f" ± {spread:.2g}")


def _cell(col: str, v: Any) -> str:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return MISSING
    if col == "dataset":
        return dataset_label(str(v))
    if col == "arch":
        return FLOOR_LABELS.get(str(v)) or arch_label(str(v))
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def _md(cells: pd.DataFrame, headers: dict[str, str], bold: set[tuple[int, str]], caption: str | None) -> str:
    def cell(i: int, c: str) -> str:
        text = str(cells.at[i, c]).replace("|", "\\|")
        return f"**{text}**" if (i, c) in bold and text not in ("", MISSING) else text

    lines = ["| " + " | ".join(headers[c] for c in cells.columns) + " |", "|" + "---|" * len(cells.columns)]
    lines += ["| " + " | ".join(cell(i, c) for c in cells.columns) + " |" for i in cells.index]
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "–": "--",
    "≤": r"$\leq$",
    "×": r"$\times$",
}


_NUMERIC = re.compile(r"^([-+]?\d[\d.]*(e[-+]?\d+)?( ± .*)?|–|)$")


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (one pass, so replacements are never re-escaped) and map ±, ↑, ↓, – to LaTeX."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def _latex(cells: pd.DataFrame, headers: dict[str, str], bold: set[tuple[int, str]], caption: str | None) -> str:
    def cell(i: int, c: str) -> str:
        text = latex_escape(cells.at[i, c])
        return f"\\textbf{{{text}}}" if (i, c) in bold and cells.at[i, c] not in ("", MISSING) else text

    align = "".join("r" if cells[c].map(lambda v: bool(_NUMERIC.match(str(v)))).all() else "l" for c in cells.columns)
    lines = ["\\begin{table}[ht]", "\\centering"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    lines += [
        f"\\begin{{tabular}}{{{align}}}",
        "\\toprule",
        " & ".join(latex_escape(headers[c]) for c in cells.columns) + " \\\\",
        "\\midrule",
    ]
    for i in cells.index:
        if i > 0 and "dataset" in cells and cells.at[i, "dataset"]:
            lines.append("\\midrule")
        lines.append(" & ".join(cell(i, c) for c in cells.columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _html(cells: pd.DataFrame, headers: dict[str, str], bold: set[tuple[int, str]], caption: str | None) -> str:
    import html

    def cell(i: int, c: str) -> str:
        text = html.escape(str(cells.at[i, c]))
        return f"<td><b>{text}</b></td>" if (i, c) in bold and text not in ("", MISSING) else f"<td>{text}</td>"

    lines = ["<table>"]
    if caption:
        lines.append(f"<caption>{html.escape(caption)}</caption>")
    head = "".join(f"<th>{html.escape(headers[c])}</th>" for c in cells.columns)
    lines.append(f"<thead><tr>{head}</tr></thead>")
    lines.append("<tbody>")
    lines += ["<tr>" + "".join(cell(i, c) for c in cells.columns) + "</tr>" for i in cells.index]
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines) + "\n"


_RENDERERS = {"md": _md, "latex": _latex, "tex": _latex, "html": _html}
