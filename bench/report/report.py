"""The report: every table (md, tex, csv, html) and figure of a results table, with an index that says
where the numbers come from (real or synthetic data, profile, jobs, conventions, package versions).

Entry points for the CLI: ``build_report`` (``bench report``), ``report_table`` (``bench report --table N``)
and ``report_figure`` (``bench report --figure 8``).
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analysis import comparisons, learning, ranking, stats, tables
from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
from bench.errors import InvalidInput, NoResults, UserError
from bench.metrics import metric_name
from bench.report import validation
from bench.report.curves import learning_curves
from bench.report.html import index_html
from bench.report.table_render import render
from bench.results import selection

FORMATS = ("md", "tex", "csv", "html")
_RENDER_FMT = {"md": "md", "tex": "latex", "latex": "latex", "csv": "csv", "html": "html"}
CONVENTIONS = [
    "Prediction mask: sigmoid(logits) > 0.5; metrics on the evaluation-size masks (column eval_size; paper: 256x256).",
    (
        "Dice and IoU from integer counts in float64, no smoothing. Both masks empty: Dice = IoU = 1 (counted; the "
        "sensitivity table shows the ranking when such images are excluded). Reference empty, prediction not: 0."
    ),
    (
        "HD (paper Eq. 6-8): symmetric Hausdorff distance over all foreground pixels, Euclidean, in pixels. Both empty: 0; "
        "exactly one empty: the image diagonal (flagged hd_worst_case, never NaN)."
    ),
    "HD95: max of the two directed 95th percentiles of boundary-to-boundary distances (MONAI convention), pixels.",
    (
        "Tables 4/5: mean ± std (ddof=1) over fold models of each fold model's mean over its images "
        "(Table 4: validation folds of the holdout protocol; Table 5: the holdout test set)."
    ),
    (
        "Protocols: holdout (Tables 4-5) = a seeded group-aware 70/30 split, the 70% in 5 folds; fold model k trains "
        "on the 4 other folds, chooses its epoch on fold k (its Table 4 score) and is scored on the 30% test set (Table 5). cv (Fig. 8) = standard "
        "5-fold cross-validation: fold model k trains on the 4 other folds (80%) minus an inner validation part of "
        "whole groups (inner_fraction of those folds, 0.1 by default: 72% of the data), chooses its epoch there and "
        "is scored on fold k, so every image is scored once, out of fold."
    ),
    (
        "Statistics: paired on case_id (unmatched sets refused), at the level of the independent unit by default "
        "(each image's value averaged over fold models, then over its group: an LGG patient, an ISBI/GlaS source "
        "image; every output names the unit); paired t-test, Holm correction across the comparisons of one dataset, "
        "Cohen's d_z and the mean difference with its t-based 95% CI. Under cv also the corrected resampled t-test "
        "over fold models (Nadeau & Bengio 2003)."
    ),
    (
        "Like for like: every comparison refuses architectures whose jobs differ in any setting but the architecture "
        "(training recipe, data options, split, data source, evaluation size)."
    ),
]
REPORT_PACKAGES = ("numpy", "pandas", "scipy", "statsmodels", "matplotlib", "seaborn", "mildnet-bench")


# ----------------------------------------------------------------------------- single entry points


def report_table(
    df: pd.DataFrame,
    n: int | str,
    fmt: str = "md",
    vs_paper: bool = False,
    *,
    failures: pd.DataFrame | None = None,
    sidecars: Sequence[dict[str, Any]] | None = None,
    inputs: Sequence[Any] = (),
    **kwargs: Any,
) -> str:
    """Table ``n`` rendered as ``fmt`` (md, tex/latex, csv, html).

    ``n``: 3 (hyper-parameters, needs ``sidecars``), 4, 5, ``"floors"``, ``"sensitivity"``, ``"tests"``
    (paired tests, ``kwargs`` go to ``stats.paired_tests``), ``"folds"`` (corrected resampled t-test over
    cv fold models), ``"ranks"`` (bootstrap rank uncertainty, ``bench.analysis.ranking.rank_table``),
    ``"settings"`` (the configurations of the folder, needs ``sidecars``), or 1/2 (built by
    ``bench.datasets.summary`` ``table1(*inputs)`` / ``table2(*inputs)``: prepared datasets, or (prepared,
    split) pairs).
    """
    table = build_table(df, n, vs_paper, failures=failures, sidecars=sidecars, inputs=inputs, **kwargs)
    return render(table if _render_fmt(fmt) == "csv" else human_columns(table), _render_fmt(fmt))


def build_table(
    df: pd.DataFrame,
    n: int | str,
    vs_paper: bool = False,
    *,
    failures: pd.DataFrame | None = None,
    sidecars: Sequence[dict[str, Any]] | None = None,
    inputs: Sequence[Any] = (),
    **kwargs: Any,
) -> pd.DataFrame:
    """The DataFrame behind ``report_table`` (raw floats; caption and bold cells in ``attrs``)."""
    key = str(n)
    if key in ("1", "2"):
        try:
            from bench.datasets import summary
        except ImportError as exc:
            raise ValueError(f"Table {n} is built by bench.datasets.summary, which is not importable: {exc}") from exc
        return getattr(summary, f"table{n}")(*inputs, **kwargs)
    if key in ("3", "settings"):
        if not sidecars:
            raise ValueError(f"Table {n} needs the job sidecars (bench.results.store.sidecars(results))")
        if key == "settings":
            return selection.settings_overview(selection.settings_table(sidecars))
        return tables.table3(sidecars)
    if key == "compute":  # parameters, GMACs, time and memory per job beside Dice (bench.analysis.compute)
        from bench.analysis.compute import compute_table

        return compute_table(df, sidecars or [])
    selected = selected_archs(df, failures)
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "4": lambda: tables.table4(
            df, failures=failures, vs_paper=vs_paper, **{"archs": _table4_archs(selected), **kwargs}
        ),
        "5": lambda: tables.table5(df, failures=failures, vs_paper=vs_paper, **{"archs": selected, **kwargs}),
        "floors": lambda: tables.floor_rows(df, **kwargs),
        "sensitivity": lambda: tables.sensitivity(df, **kwargs)[0],
        "tests": lambda: comparisons.tests_table(df, **kwargs),
        "folds": lambda: comparisons.fold_tests_table(df, **kwargs),
        "ranks": lambda: ranking.rank_table(df, **{"protocol": _ranking_protocol(df), **kwargs}),
        "suitability": lambda: validation.suitability.suitability_table(df, **kwargs),
    }
    if key not in builders:
        raise InvalidInput(
            f"unknown table {n!r}; expected 1, 2, 3, 4, 5, floors, sensitivity, tests, folds, ranks or settings"
        )
    return with_tuning_note(builders[key](), df)


def selected_archs(df: pd.DataFrame, failures: pd.DataFrame | None = None) -> list[str]:
    """The architectures this selection ran (finished or failed), in the paper's order: the rows a table lists
    (an architecture nobody selected is not a "not run" row)."""
    names = set(df["arch"]) if "arch" in df else set()
    if failures is not None and len(failures) and "arch" in failures:
        names |= set(failures["arch"])
    return ordered_archs(names)


def _table4_archs(selected: Sequence[str]) -> list[str] | None:
    """Table 4's rows: the paper's ablation rows that were run (all of them, as "not run", when none was)."""
    from bench.analysis.names import paper_archs

    rows = [a for a in paper_archs("table4") if a in selected]
    return rows or None


def with_tuning_note(table: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the tuning its jobs were chosen by in the caption (``selection.tuning_note``), if any."""
    note = selection.tuning_note(df)
    if note:
        caption = str(table.attrs.get("caption") or "")
        table.attrs["caption"] = f"{caption} {note}".strip()
    return table


def _ranking_protocol(df: pd.DataFrame) -> str:
    return "holdout" if ((df["protocol"] == "holdout") & (df["split"] == "test")).any() else "cv"


def _render_fmt(fmt: str) -> str:
    if fmt not in _RENDER_FMT:
        raise InvalidInput(f"fmt must be one of {', '.join(_RENDER_FMT)}; got {fmt!r}")
    return _RENDER_FMT[fmt]


def report_figure(df: pd.DataFrame, n: int | str, out_dir: Path | str, **kwargs: Any) -> list[Path]:
    """Figure ``n`` saved under ``out_dir``: 8 (Fig. 8 panels + combined), ``"bars"``, ``"ranking"``,
    ``"ranks"`` (bootstrap rank distributions), ``"curves"`` (learning curves; needs ``sidecars=``)."""
    from bench.report import figures  # seaborn and matplotlib: only where a figure is drawn

    makers: dict[str, Callable[..., list[Path]]] = {
        "8": figures.fig8,
        "bars": figures.bar_chart,
        "ranking": figures.ranking,
        "ranks": figures.rank_uncertainty,
    }
    if str(n) == "pareto":  # accuracy against the compute each job recorded (bench.report.pareto)
        return validation.pareto(df, Path(out_dir), kwargs.get("sidecars", ()))
    if str(n) == "curves":  # learning curves come from the sidecars' histories, not the rows
        return learning_curves(kwargs["sidecars"], Path(out_dir))
    if str(n) not in makers:
        raise InvalidInput(f"unknown figure {n!r}; expected 8, bars, ranking, ranks or curves")
    return makers[str(n)](df, Path(out_dir), **kwargs)


# ----------------------------------------------------------------------------- the whole report


def build_report(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    sidecars: Sequence[dict[str, Any]],
    failures: pd.DataFrame | None = None,
    fmt: Sequence[str] = FORMATS,
    vs_paper: bool = True,
    reference: str = stats.REFERENCE,
    metric: str = "iou",
    data_inputs: dict[int, Sequence[Any]] | None = None,
    commands: Sequence[str] = (),
    results: Path | str | None = None,
    notes: list[str] | None = None,
) -> Path:
    """Write every table and figure under ``out_dir`` plus ``index.md`` and ``index.html``; returns index.md.

    A part without data (e.g. no ``cv`` results, so no Fig. 8) is listed in the index with the reason.
    ``data_inputs`` maps 1 and 2 to the inputs of Tables 1 and 2 (``bench.report.data.loaded_data``).
    ``commands``: the command lines that made the results and this report, stated in the index.
    ``results``: the results folder; when given, the pictures from its stored predictions and checkpoints
    (qualitative grids, failure galleries, saliency maps; ``picture_items``) are added. ``notes`` gets a
    line when some comparisons could not be built; when none could, NoResults says why (after writing).
    """
    if df.empty:
        raise NoResults("no results to report (the results table is empty)")
    out_dir = Path(out_dir)
    (out_dir / "tables").mkdir(parents=True, exist_ok=True)
    items: list[tuple[str, list[Path] | str]] = []
    for name, n in (("Table 1: datasets as loaded", 1), ("Table 2: split counts", 2)):
        if data_inputs and n in data_inputs:
            items.append((name, _write_table(df, n, out_dir, fmt, vs_paper, failures, sidecars, inputs=data_inputs[n])))
        else:
            items.append((name, "not built: no data inputs given"))
    for name, n in (
        ("Table 3: hyper-parameters", 3),
        ("Table 4: MLR ablation (holdout validation folds)", 4),
        ("Table 5: all models (holdout test set)", 5),
        ("Floors: trivial predictions", "floors"),
        ("Convention sensitivity", "sensitivity"),
    ):
        items.append((name, _write_table(df, n, out_dir, fmt, vs_paper, failures, sidecars)))
    for protocol in ("cv", "holdout"):
        for unit in ("group", "image", *(["patient"] if "patient" in df.columns else [])):
            items.append(
                (
                    f"Paired tests ({protocol}, {metric}, vs {reference}, unit: {unit})",
                    _write_table(
                        df,
                        "tests",
                        out_dir,
                        fmt,
                        False,
                        failures,
                        sidecars,
                        protocol=protocol,
                        metric=metric,
                        reference=reference,
                        unit=unit,
                    ),
                )
            )
    items.append(
        (
            f"Fold-level tests (cv, {metric}, vs {reference}; Nadeau & Bengio 2003)",
            _write_table(df, "folds", out_dir, fmt, False, failures, sidecars, metric=metric, reference=reference),
        )
    )
    items.append(
        (
            "Rank uncertainty (bootstrap over independent units)",
            _write_table(df, "ranks", out_dir, fmt, False, failures, sidecars),
        )
    )
    items.append(
        ("Configurations in the results", _write_table(df, "settings", out_dir, fmt, False, failures, sidecars))
    )
    items += validation.validation_items(  # the suitability table, the Pareto figure
        df, out_dir, sidecars, lambda n: _write_table(df, n, out_dir, fmt, False, failures, sidecars)
    )
    captions = figure_captions(df, reference, metric)
    for name, n, kw in (
        (
            "Fig. 8: box plots per independent unit (cv if run, else holdout)",
            8,
            {"reference": reference, "metric": metric, "protocol": None},
        ),
        ("Bars: Dice and IoU with 95% CIs", "bars", {}),
        ("Mean rank across datasets", "ranking", {}),
        ("Rank uncertainty: bootstrap rank distributions", "ranks", {}),
    ):
        items.append((name, _try(lambda n=n, kw=kw: report_figure(df, n, out_dir / "figures", **kw))))
    items.append(
        (
            "Learning curves: loss per epoch, chosen epoch marked",
            _try(lambda: report_figure(df, "curves", out_dir / "figures", sidecars=sidecars)),
        )
    )
    tuned_commands: list[str] = []
    if results is not None:
        items += picture_items(df, Path(results), out_dir / "figures", captions=captions)
        items += tuning_items(Path(results), out_dir / "tables", tuned_commands)
    line = _try(lambda: tables.sensitivity(df)[1])
    facts = provenance(df, sidecars, failures)
    facts["commands"] = [*tuned_commands, *commands]
    summary = summary_facts(df, sidecars, failures, items, data_inputs)
    summary = validation.add_validation(summary, facts, items, df, sidecars, results, failures, out_dir)
    index = out_dir / "index.md"
    index.write_text(_index_md(facts, items, line, out_dir, summary))
    (out_dir / "index.html").write_text(index_html(_facts_lines(facts), summary, items, line, out_dir, captions))
    _check_something_compared(items, index, notes)
    return index


#: The report's parts that compare architectures: at least one must be built, or the report says why it
#: has nothing to compare (``_check_something_compared``).
COMPARISONS = (
    "Table 4",
    "Table 5",
    "Paired tests",
    "Fold-level tests",
    "Rank uncertainty",
    "Fig. 8",
    "Bars",
    "Mean rank",
)


def _check_something_compared(items: Sequence[tuple[str, Any]], index: Path, notes: list[str] | None) -> None:
    """Raise (exit 2) when no comparison of the report could be built, naming the first reason; else add a
    line to ``notes`` saying how many parts were not built and the most common reason."""
    parts = [(n, w) for n, w in items if n.startswith(COMPARISONS)]
    missing = [(n, w) for n, w in parts if isinstance(w, str)]
    if parts and len(missing) == len(parts):
        reasons = pd.Series([w.removeprefix("not built: ") for _, w in missing]).value_counts()
        raise NoResults(
            f"no table, test or figure comparing architectures could be built ({len(missing)} of {len(parts)} "
            f"parts refused; {index.parent} holds the rest and lists the configurations); reason: {reasons.index[0]}"
        )
    if missing and notes is not None:
        reasons = pd.Series([w.removeprefix("not built: ") for _, w in missing]).value_counts()
        notes.append(
            f"{len(missing)} of {len(parts)} comparison parts of the report were not built (listed in the index with "
            f"the reason); most common reason ({reasons.iloc[0]}x): {reasons.index[0]}"
        )


def _protocol_of(df: pd.DataFrame) -> str:
    try:
        return stats.resolve_protocol(df, None, None)[0]
    except UserError:
        return "holdout"


def unit_phrase(df: pd.DataFrame) -> str:
    """The unit of analysis of the paired tests, Fig. 8, bars and ranks per dataset, in words: "MRI: patients;
    DSB-2018: images"."""
    from bench.datasets import dataset_info

    parts = []
    for ds in ordered_datasets(df["dataset"].unique()):
        rows = df[df["dataset"] == ds]
        if "group" not in rows or rows["group"].nunique() == rows["case_id"].nunique():
            noun = "images"
        else:
            try:
                noun = dataset_info(ds).unit_nouns[0]
            except KeyError:
                noun = "groups"
            noun = "source images" if noun == "groups" else noun
        parts.append(f"{dataset_label(ds)}: {noun}")
    return "; ".join(parts)


def figure_captions(df: pd.DataFrame, reference: str, metric: str) -> dict[str, str]:
    """What each figure of the report draws (by item name): unit, protocol, what a mark or colour means."""
    protocol = _protocol_of(df)
    scored = "the held-out fold of each cv fold model" if protocol == "cv" else "the holdout test set"
    units = unit_phrase(df)
    data = " Synthetic stand-in data: says nothing about the networks." if (df["source"] == "synthetic").any() else ""
    return {
        "Fig. 8: box plots per independent unit (cv if run, else holdout)": (
            f"Box plots of {metric_name(metric)} per independent unit ({units}), each unit's value averaged over "
            f"fold models, on {scored} ({protocol}); one box per architecture, {arch_label(reference)} the "
            f"reference of the paired tests; one panel per dataset, then all together.{data}"
        ),
        "Bars: Dice and IoU with 95% CIs": (
            f"Mean Dice and IoU of each architecture per dataset over the independent units ({units}) of "
            f"{scored} ({protocol}), with t-based 95% confidence intervals over those units.{data}"
        ),
        "Mean rank across datasets": (
            f"Each architecture's rank by mean Dice on {scored} ({protocol}), averaged over the datasets; "
            f"1 = best.{data}"
        ),
        "Rank uncertainty: bootstrap rank distributions": (
            f"How often each architecture takes each rank by mean Dice when the independent units ({units}) of "
            f"{scored} ({protocol}) are resampled with replacement (1000 bootstrap samples).{data}"
        ),
        "Learning curves: loss per epoch, chosen epoch marked": (
            "Training loss and selection (validation) loss per epoch of every fold model, one panel per dataset "
            f"and architecture; the marker is the epoch whose weights were kept (lowest selection loss).{data}"
        ),
    }


def picture_items(
    df: pd.DataFrame, results: Path, out_dir: Path, n: int = 3, captions: dict[str, str] | None = None
) -> list[tuple[str, list[Path] | str]]:
    """Per dataset: the qualitative grid (where the architectures disagree most), the failure galleries (each
    architecture's ``n`` worst images; architectures with the same worst images share one) and the saliency
    maps of every architecture (``n`` images). ``captions`` (if given) gets each picture's caption by name."""
    from bench.report.qualitative import qualitative_panels
    from bench.report.saliency import saliency

    captions = {} if captions is None else captions
    items: list[tuple[str, list[Path] | str]] = []
    for ds in ordered_datasets(df["dataset"].unique()):
        label = dataset_label(ds)
        made = _try_pictures(lambda ds=ds: qualitative_panels(df, results, ds, out_dir, worst=n, n=n))
        if isinstance(made, str):
            items.append((f"Qualitative: {label}", made))
        else:
            for panel in made:
                labels = [arch_label(a) for a in panel.archs]
                whose = (
                    f"{labels[0]}'s {len(panel.cases)} worst images"
                    if len(labels) == 1
                    else f"the {len(panel.cases)} worst images of {', '.join(labels[:-1])} and {labels[-1]} (the same)"
                    if labels
                    else ""
                )
                name = (
                    f"Failure gallery: {label}, {whose}"
                    if panel.archs
                    else f"Qualitative: {label}, where the architectures disagree most"
                )
                items.append((name, list(panel.paths)))
                captions[name] = panel.caption
        archs = ordered_archs(df.loc[df["dataset"] == ds, "arch"].unique())
        protocol = "holdout" if (df.loc[df["dataset"] == ds, "protocol"] == "holdout").any() else "cv"
        name = f"Saliency: {label} (gradient per decoder stage, averaged)"
        items.append(
            (
                name,
                _try_pictures(
                    lambda ds=ds, archs=archs, protocol=protocol: saliency(
                        results, ds, archs, out_dir, n=n, protocol=protocol, raw=False
                    )
                ),
            )
        )
        captions[name] = (
            f"Gradient saliency of each architecture ({', '.join(arch_label(a) for a in archs)}) on {n} "
            f"{label} images of the {protocol} {'test set' if protocol == 'holdout' else 'held-out folds'}: "
            "the magnitude of the gradient of the predicted foreground with respect to each decoder stage, "
            "averaged over channels and upsampled to the image; brighter means more influence."
        )
    return items


def tuning_items(results: Path, out_dir: Path, commands: list[str] | None = None) -> list[tuple[str, list[Path] | str]]:
    """Each ``bench tune`` outcome of the results folder (``results/tuned/NAME``: the tuned profile and its
    tables), copied into the report as ``tables/tuned_NAME.*``; ``commands`` gets each tuning's recorded
    ``bench tune`` line."""
    import shutil

    import yaml

    items: list[tuple[str, list[Path] | str]] = []
    for profile in sorted((results / "tuned").glob("*.yaml")):
        recorded = (yaml.safe_load(profile.read_text()) or {}).get("command")
        if commands is not None and recorded:
            commands.append(str(recorded))
        copies = []
        for ext in (".html", ".md", ".csv", ".yaml"):
            if profile.with_suffix(ext).is_file():
                copies.append(out_dir / f"tuned_{profile.stem}{ext}")
                shutil.copyfile(profile.with_suffix(ext), copies[-1])
        items.append((f"Table 3 (tuning): {profile.stem}, best configuration per architecture", copies))
    return items


def _try_pictures(make: Callable[[], Any]) -> Any:
    """``_try`` for the pictures from stored files: a missing prediction, checkpoint or case (an older or
    partial results folder) also becomes the reason shown in the index."""
    try:
        return make()
    except UserError as exc:  # bad input or results that cannot answer; a bug keeps its traceback
        return f"not built: {exc}"


def _try(make: Callable[[], Any]) -> Any:
    """Run ``make``; a ``UserError`` (no data for this part, results that may not be compared) becomes the
    reason shown in the index. Anything else is a bug and keeps its traceback."""
    try:
        return make()
    except UserError as exc:
        return f"not built: {exc}"


def _write_table(
    df: pd.DataFrame,
    n: int | str,
    out_dir: Path,
    fmts: Sequence[str],
    vs_paper: bool,
    failures: pd.DataFrame | None,
    sidecars: Sequence[dict[str, Any]],
    **kwargs: Any,
) -> list[Path] | str:
    table = _try(lambda: build_table(df, n, vs_paper, failures=failures, sidecars=sidecars, **kwargs))
    if isinstance(table, str):
        return table
    stem = f"table{n}" if str(n).isdigit() else f"{n}_{kwargs['protocol']}" if "protocol" in kwargs else str(n)
    stem += "_image" if kwargs.get("unit") == "image" else ""
    paths = []
    for f in fmts:
        path = out_dir / "tables" / f"{stem}.{f}"
        path.write_text(render(table if f == "csv" else human_columns(table), _render_fmt(f)))
        paths.append(path)
    return paths


#: Column names as a reader reads them (the CSV keeps the tidy names). Columns the renderer already names
#: (dataset, arch, metrics, "mean ± std" pairs) are left to it.
HUMAN_COLUMNS = {
    "source": "Data",
    "modality": "Modality",
    "images": "Images",
    "majority_size": "Most common size",
    "majority_share": "Share at that size",
    "channels": "Channels",
    "rows": "Rows (images or patches)",
    "unit": "Scored unit",
    "protocol": "Protocol",
    "split_hash": "Split file (hash)",
    "fold": "Fold",
    "train": "Train",
    "val": "Validation",
    "test": "Test",
    "n_units": "Units",
    "mean_ref": "Reference mean",
    "mean_other": "Model mean",
    "mean_diff": "Difference (reference − model)",
    "ci_low": "95% CI low",
    "ci_high": "95% CI high",
    "d_z": "Effect size d_z",
    "p_raw": "p",
    "p_adj": "p (corrected)",
    "significant": "Significant",
    "n_folds": "Folds",
    "statistic": "t",
    "rank": "Rank",
    "mean_rank": "Mean rank",
    "rank_low": "Rank 95% low",
    "rank_high": "Rank 95% high",
    "p_first": "P(first)",
    "n_boot": "Bootstrap samples",
    "jobs": "Jobs",
    "configuration": "Configuration",
    "data_options": "Data options",
    "data_fingerprint": "Data fingerprint",
    "n_both_empty": "Images with both masks empty",
    "best": "Chosen",
    "val_dice": "Validation Dice",
    "val_iou": "Validation IoU",
    "n_points": "Grid points",
    "tuned_on": "Tuned on",
    "point": "Grid point",
}


def human_columns(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with reader's column names (``HUMAN_COLUMNS``; other snake_case names with spaces) for md,
    LaTeX and HTML. Names the renderer reads (dataset, arch, kind, note, metrics, ``*_mean``/``*_std`` pairs,
    ``paper_*``, hidden ``_*``) are kept, and so are the caption and bold cells."""
    from bench.metrics import METRIC_LABELS
    from bench.report.table_render import COLUMN_HEADERS

    def human(col: str) -> str:
        base = col.removeprefix("paper_")
        keep = (
            col.startswith("_")
            or col in COLUMN_HEADERS
            or col == "kind"
            or base in METRIC_LABELS
            or col.endswith(("_mean", "_std", "_pm"))
        )
        if keep:
            return col
        name = HUMAN_COLUMNS.get(base, base.replace("_", " "))
        name = name[:1].upper() + name[1:]
        return f"{name} (paper)" if col.startswith("paper_") else name

    out = table.rename(columns={c: human(str(c)) for c in table.columns})
    out.attrs = dict(table.attrs)
    return out


def provenance(df: pd.DataFrame, sidecars: Sequence[dict[str, Any]], failures: pd.DataFrame | None) -> dict[str, Any]:
    """What the index states: source, profiles, datasets, archs, jobs, rows, versions."""
    statuses = pd.Series([s.get("status", "?") for s in sidecars], dtype=object).value_counts().to_dict()
    run_versions: dict[str, set[str]] = {}
    for s in sidecars:
        for k, v in ((s.get("environment") or {}).get("versions") or {}).items():
            run_versions.setdefault(k, set()).add(str(v))
    return {
        "source": tables.source_note(df),
        "profiles": sorted(map(str, df["profile"].unique())) if "profile" in df else [],
        "datasets": [dataset_label(d) for d in ordered_datasets(df["dataset"].unique())],
        "archs": [arch_label(a) for a in ordered_archs(df["arch"].unique())],
        "eval_sizes": sorted(int(s) for s in df["eval_size"].unique()) if "eval_size" in df else [],
        "jobs": {
            "results in table": int(df["job_key"].nunique()) if "job_key" in df else 0,
            "sidecars": len(sidecars),
            **{f"status {k}": int(v) for k, v in statuses.items()},
            "failed (failures table)": 0 if failures is None else len(failures),
        },
        "rows": len(df),
        "not_learned": learning.report_lines(sidecars),
        "numerics": numerics_lines(sidecars),
        "run_versions": {k: ", ".join(sorted(v)) for k, v in sorted(run_versions.items())},
        "report_versions": {"python": platform.python_version(), **{p: _version(p) for p in REPORT_PACKAGES}},
        "failures": []
        if failures is None
        else [
            f"{r.dataset}/{r.arch}/{getattr(r, 'protocol', '?')}/fold"
            f"{getattr(r, 'fold', '?')}: {str(r.error).splitlines()[0][:200]}"
            for r in failures.itertuples()
        ],
    }


#: What each built-in profile is for, as the report's first screen says it.
PROFILE_PURPOSE = {
    "quick": "a pipeline check (data, splits and the whole pipeline, end to end, in minutes); it does not "
    "compare networks: at this size some models never leave a trivial prediction",
    "paper": "the paper's recipe (GPU): numbers about the networks",
    "check": "the drift check's tiny recipe: a regression test of the code, not a benchmark",
}


def summary_facts(
    df: pd.DataFrame,
    sidecars: Sequence[dict[str, Any]],
    failures: pd.DataFrame | None,
    items: Sequence[tuple[str, Any]],
    data_inputs: dict[int, Sequence[Any]] | None = None,
) -> dict[str, Any]:
    """The report's first screen: ``lines`` ((label, text) pairs: data, profile, protocol and unit,
    configurations, did not learn, tuning), the ``headline`` (Table 5 Dice with its floors, display strings;
    None when there is no holdout test set), ``headline_caption`` and the ``provenance`` line."""
    done = [s for s in sidecars if s.get("status") == "ok"]
    bad = [s for s in done if (s.get("learning") or {}).get("did_not_learn")]
    lines = [
        ("Data", data_line(df, data_inputs)),
        ("Profile", profile_line(df)),
        ("Protocol and unit", protocol_line(df)),
        (
            "Did not learn",
            f"{len(bad)} of {len(done)} fold models did not learn ({learning.RULES}); see [did-not-learn]",
        ),
        ("Configurations", configurations_line(sidecars)),
    ]
    note = selection.tuning_note(df)
    if note:
        lines.append(("Tuning", note.removeprefix("Tuned: ")))
    headline, caption = headline_table(df, failures)
    return {"lines": lines, "headline": headline, "headline_caption": caption, "provenance": provenance_line(sidecars)}


def data_line(df: pd.DataFrame, data_inputs: dict[int, Sequence[Any]] | None = None) -> str:
    """Real or synthetic, which datasets and how many images each (from Table 1's inputs when given)."""
    counts: dict[str, str] = {}
    for data in (data_inputs or {}).get(1, ()):
        n_groups = len(set(getattr(data, "groups", ())))
        unit = "patches" if getattr(data, "unit", "image") == "patch" else "images"
        counts[data.dataset] = (
            f"{n_groups} images as {len(data)} patches" if unit == "patches" else f"{len(data)} {unit}"
        )
    parts = []
    for ds in ordered_datasets(df["dataset"].unique()):
        n = counts.get(ds) or f"{df.loc[df['dataset'] == ds, 'case_id'].nunique()} images scored"
        parts.append(f"{dataset_label(ds)} ({n})")
    sources = sorted(df["source"].unique()) if "source" in df else []
    kind = (
        "real data"
        if sources == ["real"]
        else "SYNTHETIC stand-ins (not the paper's images; the numbers say nothing about the networks)"
        if sources == ["synthetic"]
        else f"mixed sources ({', '.join(sources) or 'not recorded'})"
    )
    return f"{kind}: {', '.join(parts)}"


def profile_line(df: pd.DataFrame) -> str:
    """Each profile of the rows with its description and what it is for."""
    from bench.config import load_profile

    bases: dict[str, str] = {}
    for value in df["tuning"].dropna().unique() if "tuning" in df else []:
        record = selection.tuning_of(value)
        if record.get("base_profile"):
            bases[f"tuned-{record.get('name')}"] = str(record["base_profile"])
    out = []
    for name in sorted(map(str, df["profile"].unique())) if "profile" in df else []:
        base = bases.get(name, name)
        try:
            text = load_profile(base).description
        except UserError:
            text = "a profile file"
        if base != name:
            text = f"{base} with each architecture's tuned values; {base}: {text}"
        purpose = PROFILE_PURPOSE.get(base)
        out.append(f"{name} ({text})" + (f", for {purpose}" if purpose else ""))
    return "; ".join(out) or "not recorded"


def protocol_line(df: pd.DataFrame) -> str:
    """The protocols of the rows and the unit of analysis of each kind of output."""
    protocols = set(df["protocol"].unique()) if "protocol" in df else set()
    said = []
    if "holdout" in protocols:
        said.append(
            "holdout (Tables 4-5: fold models trained on the other folds of the 70%, scored on the 30% test set)"
        )
    if "cv" in protocols:
        said.append("cv (Fig. 8 and the tests when run: each image scored once, by the fold model that held it out)")
    return (
        f"{' and '.join(said) or 'not recorded'}. Unit of analysis: Tables 4-5 average over fold models of each "
        f"fold model's mean over its images; tests, Fig. 8, bars and ranks use independent units ({unit_phrase(df)})"
    )


def configurations_line(sidecars: Sequence[dict[str, Any]]) -> str:
    """How many configurations the folder holds per dataset and protocol, and the settings that differ
    between datasets (a per-dataset setting such as ``--set lgg_mri.n_folds=2``)."""
    settings = selection.settings_table(sidecars)
    if settings.empty:
        return "not recorded"
    natural = {"dataset", "protocol", "status", "split_hash", "data_fingerprint", "data_options", "source"}
    cols = [c for c in selection.comparable_columns(settings) if c not in natural]
    shown = settings.map(selection._show)
    group = ["dataset", "protocol", "arch"]  # a tuning may give each architecture its own values
    per_group = shown.groupby(group)[cols].nunique().max(axis=1) if cols else pd.Series([1])
    n = int(per_group.max()) if len(per_group) else 1
    head = (
        "one configuration per dataset, protocol and architecture"
        if n <= 1
        else f"up to {n} configurations per dataset, protocol and architecture: compare one at a time (--where)"
    )
    differ = []
    for c in [c for c in cols if c != "tuning"]:
        if shown[c].nunique() > 1 and n <= 1 and shown.groupby(["dataset", "protocol"])[c].nunique().max() == 1:
            values = shown.groupby(["dataset", "protocol"])[c].first()
            common = values.value_counts().index[0]
            odd = [f"{dataset_label(d)} {p}: {v}" for (d, p), v in values.items() if v != common]
            differ.append(f"{c} {common}, except {', '.join(odd)}")
    return head + (f"; settings per dataset: {'; '.join(differ)}" if differ else "")


def headline_table(df: pd.DataFrame, failures: pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    """Table 5's Dice (mean ± std over fold models) with the trivial floors, architectures by datasets, as
    display strings; "(did not learn k/n)" where fold models were flagged. (None, reason) without it."""
    table = _try(lambda: build_table(df, 5, failures=failures))
    if isinstance(table, str):
        return None, table
    names = [dataset_label(d) for d in ordered_datasets(table["dataset"].unique())]
    cells: dict[str, dict[str, str]] = {}
    from bench.report.table_render import FLOOR_LABELS

    for r in table.itertuples():
        label = FLOOR_LABELS.get(str(r.arch)) or arch_label(str(r.arch))
        mean, std = getattr(r, "dice_mean", float("nan")), getattr(r, "dice_std", float("nan"))
        text = "–" if pd.isna(mean) else f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.2g}")
        note = str(getattr(r, "note", "") or "")
        flag = next((p.strip() for p in note.split(";") if p.strip().startswith("did not learn")), "")
        cells.setdefault(label, {})[dataset_label(str(r.dataset))] = text + (f" ({flag})" if flag else "")
    out = pd.DataFrame.from_dict(cells, orient="index").reindex(columns=names).fillna("–")
    out.index.name = "Model"
    caption = (
        "Table 5 (headline): Dice on the holdout test set, mean ± std over fold models of each fold model's mean "
        "over its test images, with the trivial floors (every pixel foreground / background) of the same images: "
        "a model at or below a floor has learned nothing. Full table with IoU and HD below."
    )
    note = selection.tuning_note(df)
    return out.reset_index(), caption + (f" {note}" if note else "")


def provenance_line(sidecars: Sequence[dict[str, Any]]) -> str:
    """Version, commit, machine and numerics of the runs, in one line."""
    envs = [s.get("environment") or {} for s in sidecars if s.get("status") == "ok"]

    def values(get: Callable[[dict[str, Any]], Any]) -> str:
        found = sorted({str(v) for v in map(get, envs) if v})
        return ", ".join(found) or "not recorded"

    numerics = "; ".join(numerics_lines(sidecars)) or "not recorded"
    return (
        f"bench {values(lambda e: (e.get('versions') or {}).get('bench'))}, commit "
        f"{values(lambda e: str(e.get('git_sha') or '')[:10])}, machine {values(lambda e: e.get('host'))} "
        f"(CPU {values(lambda e: e.get('cpu_capability'))}); torch {values(lambda e: (e.get('versions') or {}).get('torch'))}; "
        f"numerics: {numerics}"
    )


def numerics_lines(sidecars: Sequence[dict[str, Any]]) -> list[str]:
    """How the jobs computed, one line per combination with its job count: device, parameter dtype
    (``precision``), autocast (the precision the job ran in), channels-last and ``torch.compile``."""
    combos: dict[str, int] = {}
    for s in sidecars:
        train, compute = (s.get("job") or {}).get("train") or {}, s.get("compute") or {}
        if not train:
            continue
        autocast = compute.get("precision", f"amp {train.get('amp', '?')}")
        layout = compute.get("channels_last", f"channels_last {train.get('channels_last', '?')}")
        line = (
            f"device {compute.get('device', train.get('device', '?'))}, parameters {train.get('precision', 'fp32')}, "
            f"autocast {'off' if autocast == 'fp32' else autocast}, "
            f"channels-last {'on' if layout is True else 'off' if layout is False else layout}, "
            f"torch.compile {'on' if train.get('compile') else 'off'}"
        )
        combos[line] = combos.get(line, 0) + 1
    return [f"{line}: {n} job(s)" for line, n in sorted(combos.items())]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _facts_lines(facts: dict[str, Any]) -> list[tuple[str, list[str]]]:
    return [
        *([(validation.AUDIT_HEAD, facts["audit"])] if facts.get("audit") else []),
        (
            "Data",
            [
                facts["source"],
                f"Datasets: {', '.join(facts['datasets'])}",
                f"Models: {', '.join(facts['archs'])}",
                f"Profile(s): {', '.join(facts['profiles']) or 'not recorded'}",
                f"Evaluation size(s): {', '.join(f'{s}x{s}' for s in facts['eval_sizes'])}",
                f"Rows (job x image): {facts['rows']}",
            ],
        ),
        ("Jobs", [f"{k}: {v}" for k, v in facts["jobs"].items()] + [f"failed: {f}" for f in facts["failures"]]),
        ("Did not learn", facts.get("not_learned", [])),
        ("Numerics (precision, layout, compile)", facts.get("numerics", []) or ["not recorded"]),
        ("Commands", [f"`{c}`" for c in facts.get("commands", [])] or ["not recorded"]),
        ("Conventions", CONVENTIONS),
        ("Package versions (runs)", [f"{k}: {v}" for k, v in facts["run_versions"].items()] or ["not recorded"]),
        ("Package versions (this report)", [f"{k}: {v}" for k, v in facts["report_versions"].items()]),
    ]


def _index_md(
    facts: dict[str, Any], items: list[tuple[str, Any]], line: str, root: Path, summary: dict[str, Any]
) -> str:
    out = ["# Benchmark report", ""]
    out += [
        f"- **{label}**: {text.replace('see [did-not-learn]', 'listed under Did not learn')}"
        for label, text in summary["lines"]
    ]
    if summary["headline"] is not None:
        head = summary["headline"]
        out += ["", summary["headline_caption"], ""]
        out += ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
        out += ["| " + " | ".join(str(v) for v in row) + " |" for row in head.itertuples(index=False)]
    out += ["", f"Provenance: {summary['provenance']}", ""]
    for head, lines in _facts_lines(facts):
        out += [f"## {head}", "", *[f"- {x}" for x in lines], ""]
    out += ["## Tables and figures", ""]
    for name, what in items:
        links = (
            what
            if isinstance(what, str)
            else ", ".join(f"[{p.suffix[1:]}: {p.name}]({p.relative_to(root)})" for p in what)
        )
        out.append(f"- {name}: {links}")
    out += ["", f"Convention sensitivity: {line}", ""]
    return "\n".join(out)
