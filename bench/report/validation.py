"""The report's validation parts (docs/validation.md): the audit as its first section, the suitability
table and the Pareto figure, and the headline without the datasets that cannot separate the architectures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import suitability
from bench.analysis.audit import Folder, audit, format_items
from bench.analysis.names import dataset_label
from bench.errors import UserError

AUDIT_HEAD = "Validation audit (`bench audit`; docs/validation.md)"


def audit_lines(
    df: pd.DataFrame, sidecars: Sequence[dict[str, Any]], results: Path | str | None, failures: pd.DataFrame | None
) -> list[str]:
    """One line per audit item ("PASS Title: evidence (fix: ...)"), the counts first; or why there is none."""
    if results is None:
        return ["not built: no results folder given (the audit reads its split and tuning records)"]
    items = audit(Folder(df, sidecars, Path(results), failures))
    head = format_items(items).splitlines()[0]
    return [head] + [f"{i.status} {i.title}: {i.evidence}" + (f" (fix: {i.fix})" if i.fix else "") for i in items]


def write_audit(lines: Sequence[str], out_dir: Path) -> list[Path]:
    """``audit.md`` in the report's tables folder: the audit's lines as a list."""
    path = out_dir / "tables" / "audit.md"
    path.write_text(f"# {AUDIT_HEAD}\n\n" + "\n".join(f"- {x}" for x in lines) + "\n")
    return [path]


def suitability_item(write_table: Callable[[str], list[Path] | str]) -> list[Path] | str:
    """``tables/suitability.<fmt>`` written by the report's own table writer, or the reason it was not built."""
    return write_table("suitability")


def pareto(df: pd.DataFrame, out_dir: Path, sidecars: Sequence[dict[str, Any]]) -> list[Path]:
    """``bench.report.pareto.pareto`` (matplotlib is imported only where a figure is drawn)."""
    from bench.report.pareto import pareto as draw

    return draw(df, out_dir, sidecars=sidecars)


def pareto_item(df: pd.DataFrame, out_dir: Path, sidecars: Sequence[dict[str, Any]]) -> list[Path] | str:
    try:
        return pareto(df, out_dir / "figures", sidecars)
    except UserError as exc:
        return f"not built: {exc}"


def validation_items(
    df: pd.DataFrame,
    out_dir: Path,
    sidecars: Sequence[dict[str, Any]],
    write_table: Callable[[str], list[Path] | str],
) -> list[tuple[str, list[Path] | str]]:
    """The report's index entries for the suitability table (written by ``write_table``) and the Pareto figure."""
    return [
        ("Dataset suitability: can each dataset separate the architectures?", suitability_item(write_table)),
        ("Pareto: Dice against GMACs, parameters and training time", pareto_item(df, out_dir, sidecars)),
    ]


def headline_without_unsuitable(summary: dict[str, Any], df: pd.DataFrame) -> dict[str, Any]:
    """``summary`` with the headline's dataset columns that cannot separate the architectures (Dice) left out,
    and a caption sentence that says which and why; all kept, with a sentence, when none can."""
    head = summary.get("headline")
    if head is None:
        return summary
    try:
        table = suitability.suitability_table(df, metrics=("dice",))
    except UserError:
        return summary
    cannot = table[table["verdict"] == suitability.CANNOT]
    if cannot.empty:
        return summary
    labels = [dataset_label(d) for d in cannot["dataset"]]
    note = f"{', '.join(labels)}: {suitability.CANNOT} (Dice; see the suitability table)"
    if len(cannot) == len(table):
        sentence = f" No dataset separates the architectures at this budget ({note}): read no ranking off this table."
        return {**summary, "headline_caption": summary["headline_caption"] + sentence}
    kept = head[[c for c in head.columns if c not in labels]]
    sentence = f" Left out of this headline ({note}); their columns are in the full Table 5."
    return {**summary, "headline": kept, "headline_caption": summary["headline_caption"] + sentence}


def add_validation(
    summary: dict[str, Any],
    facts: dict[str, Any],
    items: list[tuple[str, Any]],
    df: pd.DataFrame,
    sidecars: Sequence[dict[str, Any]],
    results: Path | str | None,
    failures: pd.DataFrame | None,
    out_dir: Path,
) -> dict[str, Any]:
    """The report's validation parts: ``facts["audit"]`` (the index's first section), the audit as the first
    entry of ``items`` (``audit.md`` among the tables), and the summary with the audit's counts as its first line and
    the headline without the datasets that cannot separate the architectures. Returns the new summary."""
    lines = audit_lines(df, sidecars, results, failures)
    facts["audit"] = lines
    items.insert(0, ("Validation audit: pitfalls avoided and committed", write_audit(lines, out_dir)))
    summary = headline_without_unsuitable(summary, df)
    counts = lines[0].removeprefix("Validation audit: ")
    return {
        **summary,
        "lines": [("Validation audit", f"{counts}; the checklist is the first section below"), *summary["lines"]],
    }
