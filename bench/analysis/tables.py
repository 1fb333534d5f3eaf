"""The paper's tables from the tidy per-image results table (Gudhe et al., Sci Rep 2021, Tables 3-5).

Builders return DataFrames of raw floats, one row per (dataset, model): ``<metric>_mean`` and
``<metric>_std`` over fold models (each fold model contributes the mean over the images it scored),
``n_models``, ``n_images`` and a ``note`` with the reason for anything missing ("not run",
"failed: <error>"), never a zero. Table captions and the cells to bold travel in ``df.attrs``
(``caption``, ``bold``: ``(row position, column)`` pairs). Formatting (rounding, ±, ↑/↓, bold, display
names) happens only in ``bench.report.table_render.render``, which works on any DataFrame (Tables 1-2 come
from ``bench.datasets.summary``). Which networks a paper table lists, and the order of datasets and
networks, come from the registries (``bench.analysis.names``); anything the paper does not report follows the
paper's items.

Floor rows (``floor_rows``) show what trivial predictions (all foreground, all background) score on
the same images, derived from the ground-truth counts alone with the project's conventions.

What qualifies a number stands next to it: a model row's ``note`` says "did not learn k/n" when k of its
n fold models were flagged (``bench.analysis.learning``; external-cohort rows are judged against the
cohort's own floors); a model at or below the better trivial floor of a metric is never bold; the caption
counts the HD values set to the image diagonal by the empty-mask rule per architecture and says when a
floor would rank in the top half; ``vs_paper`` adds one ``kind == "paper_note"`` row per dataset saying
what is not comparable with the paper's numbers. Tables over several datasets refuse datasets trained with
different recipes (``bench.analysis.across``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.analysis.floors import FLOORS, trivial_scores
from bench.analysis.learning import caption_note, flag_text, model_flags
from bench.analysis.names import dataset_label, ordered, ordered_datasets, paper_archs
from bench.analysis.seeds import count_text, seed_columns, seed_note
from bench.analysis.stats import canonical_dataset, default_split, ranks, run_command, select, unit_nouns
from bench.errors import NoResults
from bench.metrics import dice_from_counts, higher_is_better

PAPER_RESULTS = Path(__file__).parent.parent / "data" / "paper_results.json"
#: The metrics the paper's tables report (HD95 is in the per-image rows and on request: ``metrics=``).
PAPER_METRICS = ("dice", "iou", "hd")
_MODEL = ["fold", "seed"]


# ----------------------------------------------------------------------------- model rows


def model_summary(
    df: pd.DataFrame,
    *,
    protocol: str,
    split: str | None,
    archs: Sequence[str] | None,
    datasets: Sequence[str] | None,
    metrics: Sequence[str] = PAPER_METRICS,
    failures: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (dataset, arch): mean ± std over fold models of each fold model's mean over its images."""
    sel = select(df, protocol=protocol, split=split) if len(df) else df
    fails = _failures(failures, protocol)
    names = _datasets(sel, fails, datasets)
    flags = model_flags(sel) if len(sel) else None
    rows = []
    for ds in names:
        for arch in _archs(sel, fails, ds, archs):
            cell = sel[(sel["dataset"] == ds) & (sel["arch"] == arch)]
            learned = flag_text(flags, ds, arch) if flags is not None and len(cell) else ""
            rows.append(
                {
                    "dataset": ds,
                    "arch": arch,
                    "kind": "model",
                    **_aggregate(cell, metrics),
                    "note": "; ".join(n for n in (learned, _note(cell, fails, ds, arch)) if n),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "dataset",
            "arch",
            "kind",
            "n_models",
            "n_images",
            *[f"{m}_{s}" for m in metrics for s in ("mean", "std")],
            "note",
        ],
    )


def _aggregate(cell: pd.DataFrame, metrics: Sequence[str]) -> dict[str, Any]:
    empty = {f"{m}_{s}": np.nan for m in metrics for s in ("mean", "std")}
    out: dict[str, Any] = {"n_models": 0, "n_images": 0, **empty}
    if cell.empty:
        return out
    per_model = cell.groupby(_MODEL)[list(metrics)].mean()
    out["n_models"], out["n_images"] = len(per_model), int(cell["case_id"].nunique())
    for m in metrics:
        out[f"{m}_mean"] = float(per_model[m].mean())
        out[f"{m}_std"] = float(per_model[m].std(ddof=1)) if len(per_model) > 1 else np.nan
    return out


def _failures(failures: pd.DataFrame | None, protocol: str) -> pd.DataFrame:
    cols = ["dataset", "arch", "fold", "error"]
    if failures is None or failures.empty:
        return pd.DataFrame(columns=cols)
    missing = [c for c in ("dataset", "arch", "error") if c not in failures.columns]
    if missing:
        raise ValueError(f"failures table lacks columns {missing}; expected dataset, arch, [protocol, fold], error")
    f = failures if "protocol" not in failures.columns else failures[failures["protocol"] == protocol]
    f = f.assign(dataset=[canonical_dataset(d) for d in f["dataset"]])
    return f.assign(fold=f["fold"] if "fold" in f.columns else np.nan)[cols]


def _note(cell: pd.DataFrame, fails: pd.DataFrame, ds: str, arch: str) -> str:
    failed = fails[(fails["dataset"] == ds) & (fails["arch"] == arch)]
    if failed.empty:
        return "" if len(cell) else "not run"
    unread = failed["error"].astype(str).str.startswith("unreadable: ")
    if unread.all():  # stored results that cannot be read (bench.results.store.unreadable), not failed runs
        ok = f"; {len(cell[_MODEL].drop_duplicates())} fold models ok" if len(cell) else ""
        return "; ".join(failed["error"].astype(str)) + ok
    failed = failed[~unread]
    folds = sorted({int(f) for f in failed["fold"].dropna()})
    where = f" (fold{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))})" if folds else ""
    error = str(failed["error"].iloc[0]).strip().splitlines()[0][:120] if len(failed) else ""
    ok = f"; {len(cell[_MODEL].drop_duplicates())} fold models ok" if len(cell) else ""
    return f"failed{where}: {error}{ok}"


def _datasets(sel: pd.DataFrame, fails: pd.DataFrame, datasets: Sequence[str] | None) -> list[str]:
    if datasets is not None:
        return [canonical_dataset(d) for d in datasets]
    present = set(sel["dataset"]) if len(sel) else set()
    return ordered_datasets(present | set(fails["dataset"]))


def _archs(sel: pd.DataFrame, fails: pd.DataFrame, ds: str, archs: Sequence[str] | None) -> list[str]:
    if archs is not None:
        return list(archs)
    present = set(sel.loc[sel["dataset"] == ds, "arch"]) if len(sel) else set()
    listed = present | set(fails.loc[fails["dataset"] == ds, "arch"])
    return ordered(listed | set(paper_archs("table5")), paper_archs())


# ----------------------------------------------------------------------------- floors


def floor_rows(
    df: pd.DataFrame, *, protocol: str = "holdout", split: str | None = None, metrics: Sequence[str] = PAPER_METRICS
) -> pd.DataFrame:
    """What trivial predictions score on the images of ``protocol``/``split``, aggregated like the models.

    From the ground-truth counts alone (``n_ref``, ``N = tp + fp + fn + tn``), with the project's rules:
    all foreground: Dice = 2 n_ref / (n_ref + N), IoU = n_ref / N (0 on an empty reference), HD = the
    diagonal on an empty reference, otherwise not derivable from counts (NaN); all background: Dice =
    IoU = 0 (1 on an empty reference), HD = the diagonal (0 on an empty reference).
    """
    sel = select(df, protocol=protocol, split=split)
    if sel.empty:
        raise NoResults(
            f"no {protocol}/{default_split(protocol, split)} results: {run_command(None, protocol)} makes them"
        )
    images = sel.drop_duplicates(["dataset", *_MODEL, "case_id"])
    rows = []
    for ds, g in images.groupby("dataset", sort=False):
        for floor in FLOORS:
            scored = g.assign(**trivial_scores(g, floor))
            row = {"dataset": ds, "arch": floor, "kind": "floor", **_aggregate(scored, metrics), "note": ""}
            for m in metrics:  # one image without a value leaves the mean undefined (no skipping here)
                if scored[m].isna().any():
                    row[f"{m}_mean"] = row[f"{m}_std"] = np.nan
                    row["note"] = "HD not derivable from counts (needs the masks)"
            rows.append(row)
    out = pd.DataFrame(rows)
    order = {d: i for i, d in enumerate(ordered_datasets(out["dataset"]))} if len(out) else {}
    return out.sort_values("dataset", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- Tables 4 and 5


def table4(
    df: pd.DataFrame,
    *,
    failures: pd.DataFrame | None = None,
    vs_paper: bool = False,
    archs: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    floors: bool = True,
    metrics: Sequence[str] = PAPER_METRICS,
) -> pd.DataFrame:
    """Table 4 (MLR ablation) on the VALIDATION folds of the holdout protocol; ``archs`` default: the
    paper's Table 4 rows."""
    title = (
        "Table 4. Impact of the MLR skip connections, on the validation folds of the holdout protocol: "
        "mean ± std over fold models of each fold model's mean over its validation images."
    )
    archs = paper_archs("table4") if archs is None else archs
    return _results_table(
        df,
        "table4",
        title,
        protocol="holdout",
        split="val",
        archs=archs,
        datasets=datasets,
        failures=failures,
        vs_paper=vs_paper,
        floors=floors,
        metrics=metrics,
    )


def table5(
    df: pd.DataFrame,
    *,
    failures: pd.DataFrame | None = None,
    vs_paper: bool = False,
    archs: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    floors: bool = True,
    metrics: Sequence[str] = PAPER_METRICS,
    split: str = "test",
) -> pd.DataFrame:
    """Table 5: every arch on every dataset, holdout TEST set, mean ± std over fold models; best in bold.
    ``split="external"``: the same fold models on an external cohort (``bench evaluate --data-root``)."""
    title = (
        "Table 5. Segmentation accuracy on the holdout test set: mean ± std over fold models of each "
        "fold model's mean over the test images."
    )
    if split == "external":
        title = (
            "Table 5 (external cohort). Segmentation accuracy of the holdout fold models on an external "
            "cohort: mean ± std over fold models of each fold model's mean over the cohort's images."
        )
        vs_paper = False  # the paper has no external cohort
    return _results_table(
        df,
        "table5",
        title,
        protocol="holdout",
        split=split,
        archs=archs,
        datasets=datasets,
        failures=failures,
        vs_paper=vs_paper,
        floors=floors,
        metrics=metrics,
    )


def _results_table(
    df: pd.DataFrame,
    key: str,
    title: str,
    *,
    protocol: str,
    split: str,
    archs: Sequence[str] | None,
    datasets: Sequence[str] | None,
    failures: pd.DataFrame | None,
    vs_paper: bool,
    floors: bool,
    metrics: Sequence[str],
) -> pd.DataFrame:
    from bench.analysis.across import check_across_datasets

    if len(df):
        shown = select(df, protocol=protocol, split=split)
        if datasets is not None:
            shown = shown[shown["dataset"].isin([canonical_dataset(d) for d in datasets])]
        check_across_datasets(shown, key.replace("table", "Table "))
    models = model_summary(
        df, protocol=protocol, split=split, archs=archs, datasets=datasets, metrics=metrics, failures=failures
    )
    parts = [models]
    if floors and len(df) and not select(df, protocol=protocol, split=split).empty:
        fl = floor_rows(df, protocol=protocol, split=split, metrics=metrics)
        parts.append(fl[fl["dataset"].isin(models["dataset"])])
    out = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else models
    out = _sort_by_dataset(out)
    if vs_paper:
        out = add_paper(out, key, metrics)
        out = add_paper_notes(out, df, protocol=protocol, split=split)
    if len(df):  # fold std and seed std when there are several seeds (bench.analysis.seeds)
        out = seed_columns(out, select(df, protocol=protocol, split=split), metrics)
    out.attrs["bold"] = best_cells(out, metrics)
    out.attrs["caption"] = caption(df, title, protocol=protocol, split=split, floors=floors, vs_paper=vs_paper)
    if floors and (note := floor_rank_note(out)):
        out.attrs["caption"] += " " + note
    return out


def _sort_by_dataset(out: pd.DataFrame) -> pd.DataFrame:
    if out.empty:
        return out
    order = {d: i for i, d in enumerate(ordered_datasets(out["dataset"]))}
    return out.sort_values("dataset", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def best_cells(out: pd.DataFrame, metrics: Sequence[str]) -> list[tuple[int, str]]:
    """(row position, metric) of the best model per dataset and metric (ties all bold). Floors never, and
    never a model at or below the better trivial floor of that metric on that dataset (no better than a
    trivial prediction: nothing to call best), nor one whose every fold model did not learn."""
    cells = []
    for m in metrics:
        col = f"{m}_mean"
        for ds, g in out[out["kind"] == "model"].groupby("dataset", sort=False):
            vals = g[col].dropna()
            vals = vals[[_above_floor(v, better_floor_value(out, str(ds), m), m) for v in vals]]
            vals = vals[~g.loc[vals.index, "note"].astype(str).map(_all_flagged)]
            if len(vals):
                best = vals.max() if higher_is_better(m) else vals.min()
                cells += [(out.index.get_loc(i), m) for i in vals.index[vals == best]]
    return sorted(cells)


def better_floor_value(out: pd.DataFrame, dataset: str, metric: str) -> float:
    """The better of the trivial floors' ``<metric>_mean`` on ``dataset`` in table ``out`` (NaN: no floor row)."""
    col = f"{metric}_mean"
    if "kind" not in out or col not in out:
        return np.nan
    vals = out.loc[(out["kind"] == "floor") & (out["dataset"] == dataset), col].dropna()
    if vals.empty:
        return np.nan
    return float(vals.max() if higher_is_better(metric) else vals.min())


def _above_floor(value: float, floor: float, metric: str) -> bool:
    if np.isnan(floor):
        return True
    return bool(value > floor if higher_is_better(metric) else value < floor)


def _all_flagged(note: str) -> bool:
    import re

    hit = re.search(r"did not learn (\d+)/(\d+)", note)
    return bool(hit) and hit.group(1) == hit.group(2)


def floor_rank_note(out: pd.DataFrame, metric: str = "dice") -> str:
    """Caption sentence for each dataset where the better trivial floor would rank in the top half of the
    models by mean ``metric`` ("" when none): there the mean mostly measures the trivial images."""
    parts = []
    for ds, g in out.groupby("dataset", sort=False):
        models = g.loc[g["kind"] == "model", f"{metric}_mean"].dropna()
        floors = g[g["kind"] == "floor"].dropna(subset=[f"{metric}_mean"])
        if models.empty or floors.empty:
            continue
        best = floors.loc[
            floors[f"{metric}_mean"].idxmax() if higher_is_better(metric) else floors[f"{metric}_mean"].idxmin()
        ]
        value = float(best[f"{metric}_mean"])
        better = int((models > value).sum() if higher_is_better(metric) else (models < value).sum())
        rank = better + 1
        if rank <= (len(models) + 1) // 2:
            parts.append(
                f"{dataset_label(str(ds))}: predicting {str(best['arch']).replace('_', ' ')} ({metric} {value:.3f}) "
                f"would rank {_ordinal(rank)} of {len(models) + 1}"
            )
    if not parts:
        return ""
    return (
        "Floor in the top half: " + "; ".join(parts) + ". There the mean mostly reflects images a trivial "
        "prediction gets right (e.g. empty masks), not segmentation."
    )


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def add_paper_notes(out: pd.DataFrame, df: pd.DataFrame, *, protocol: str, split: str) -> pd.DataFrame:
    """One ``kind == "paper_note"`` row after each dataset's rows: what is not comparable with the paper's
    numbers (resolution and HD scale, what ± is, the split level, which images), in the ``note`` column."""
    sel = select(df, protocol=protocol, split=split)
    parts = []
    for ds, g in out.groupby("dataset", sort=False):
        rows = sel[sel["dataset"] == ds]
        parts.append(g)
        if len(rows):
            note = {"dataset": ds, "arch": "not comparable with the paper", "kind": "paper_note"}
            parts.append(pd.DataFrame([{**note, "note": paper_caveats(rows, split)}]))
    return pd.concat(parts, ignore_index=True) if parts else out


def paper_caveats(rows: pd.DataFrame, split: str) -> str:
    """What stands between this dataset's numbers and the paper's, in one cell."""
    from bench.analysis.stats import unit_nouns

    out = []
    sizes = sorted(rows["eval_size"].unique()) if "eval_size" in rows else []
    if sizes and sizes != [256]:
        scale = ", ".join(f"x{256 / s:g}" for s in sizes)
        out.append(
            f"resolution: {'/'.join(f'{s}x{s}' for s in sizes)} masks, the paper's 256x256 (HD in pixels scales "
            f"with the mask size: {scale} at 256)"
        )
    n_models = int(rows.drop_duplicates(["arch", *_MODEL]).groupby("arch").size().max())
    out.append(f"±: std over {n_models} fold model(s) here; the paper does not say what its ± is")
    n_images = rows["case_id"].nunique()
    n_groups = rows["group"].nunique() if "group" in rows else n_images
    group_noun, image_noun = unit_nouns(str(rows["dataset"].iloc[0]), n_groups < n_images)
    if n_groups < n_images:
        out.append(f"split: by {group_noun} here (none crosses a split); the paper's split level is not stated")
    else:
        out.append("split: by image, as each image is its own group; the paper's split is not stated")
    source = "synthetic stand-ins, not the paper's images" if (rows.get("source") == "synthetic").any() else "real data"
    out.append(f"images: {n_images} {split} {image_noun} ({source}); the paper's test set is not published")
    return "; ".join(out) + "."


@cache
def paper_results() -> dict[str, Any]:
    """The paper's Tables 4 and 5 as published (``bench/data/paper_results.json``)."""
    return json.loads(PAPER_RESULTS.read_text())


def add_paper(out: pd.DataFrame, key: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Add ``paper_<metric>`` beside each metric: the paper's cell exactly as printed ("9.395 ± 0.0031",
    "0.88 ± 8.36"; a string, never re-rounded), NaN where the paper has none."""
    table = paper_results()[key]
    out = out.copy()
    for m in metrics:
        cells = [
            table.get(d, {}).get(a, {}).get(m) if k == "model" else None
            for d, a, k in zip(out["dataset"], out["arch"], out["kind"])
        ]
        out[f"paper_{m}"] = [c["text"] if c else np.nan for c in cells]
    first = ["dataset", "arch", "kind", "n_models", "n_images"]
    metric_cols = [c for m in metrics for c in (f"{m}_mean", f"{m}_std", f"paper_{m}")]
    return out[first + metric_cols + [c for c in out.columns if c not in first + metric_cols]]


def tests_caption(settings: str, units: Sequence[str], df: pd.DataFrame) -> str:
    """Caption of the paired-tests table: the tests, the unit of analysis per dataset, the effect, the data."""
    return (
        f"Paired tests: {settings}. Unit of analysis: {'; '.join(units)}. mean_diff = reference - model, in the "
        f"metric's units per unit of analysis, with its t-based 95% CI (ci_low, ci_high); n_units units from "
        f"n_images images; {count_text(df)}. " + source_note(df)
    )


def unit_note(sel: pd.DataFrame, split: str) -> str:
    """What one fold model's value averages over, per dataset: "MRI: 12 test slices from 3 patients"."""

    parts = []
    for ds, g in sel.groupby("dataset", sort=False):
        n_images = g["case_id"].nunique()
        n_groups = g["group"].nunique() if "group" in g else n_images
        group_noun, image_noun = unit_nouns(str(ds), n_groups < n_images)
        part = f"{dataset_label(str(ds))}: {n_images} {split} {image_noun}"
        parts.append(part + (f" from {n_groups} {group_noun}" if n_groups < n_images else ""))
    return (
        "Unit: each fold model's mean over its images (" + "; ".join(parts) + "); ± = std over fold models "
        "(not an error over independent units; the paired tests are at patient / source-image level)."
    )


def caption(df: pd.DataFrame, title: str, *, protocol: str, split: str, floors: bool, vs_paper: bool) -> str:
    """Caption: title, data source (synthetic said loudly), evaluation size, conventions, extras."""
    parts = [title]
    sel = select(df, protocol=protocol, split=split) if len(df) else df
    if sel.empty:
        parts.append(f"No {protocol}/{default_split(protocol, split)} results.")
    else:
        parts.append(source_note(sel))
        sizes = sorted(sel["eval_size"].unique()) if "eval_size" in sel else []
        if "eval_resolution" in sel and (sel["eval_resolution"] == "native").all():
            parts.append(
                f"Metrics at each image's native resolution (predictions from {'/'.join(map(str, sizes))} px "
                "input resized back), HD in native pixels."
            )
        elif sizes:
            parts.append(f"Metrics on {'/'.join(f'{s}x{s}' for s in sizes)} masks, HD in pixels.")
        parts.append(unit_note(sel, default_split(protocol, split)))
        parts.append(seed_note(sel))  # seeds nested within fold models (bench.analysis.seeds)
        both = int((sel["empty_ref"] & sel["empty_pred"]).sum())
        parts.append(f"{both} image score(s) had both masks empty (counted as Dice = IoU = 1, HD = 0).")
        if diagonal := diagonal_note(sel):
            parts.append(diagonal)
        if learning_note := caption_note(sel):  # fold models flagged by bench.analysis.learning
            parts.append(learning_note)
    parts.append("↑ higher is better, ↓ lower is better; bold: best model per dataset. Missing cells say why.")
    if floors:
        parts.append("'All foreground'/'All background' rows: trivial predictions on the same images (floors).")
    if vs_paper:
        parts.append(
            "'(paper)' columns: values as published in Gudhe et al. 2021, printed strings kept exactly "
            "('mean ± spread'; the paper does not say what the spread is)."
        )
    return " ".join(parts)


def diagonal_note(sel: pd.DataFrame) -> str:
    """How many HD values the empty-mask rule set to the image diagonal (exactly one mask empty), per
    dataset and architecture, as a share of its image scores ("" when none): such values dominate a mean HD."""
    if "hd_worst_case" not in sel or not sel["hd_worst_case"].any():
        return ""
    counts = sel.groupby(["dataset", "arch"], sort=False)["hd_worst_case"].agg(["sum", "size"])
    parts = []
    for ds in ordered_datasets(counts.index.get_level_values("dataset").unique()):
        g = counts.loc[ds]
        shown = [
            f"{_arch_name(a)} {int(r['sum'])}/{int(r['size'])} ({r['sum'] / r['size']:.0%})"
            for a, r in g.iterrows()
            if r["sum"]
        ]
        if shown:
            parts.append(f"{dataset_label(str(ds))}: " + ", ".join(shown))
    return (
        "HD set to the image diagonal by the empty-mask rule (exactly one mask empty), image scores per "
        "architecture: " + "; ".join(parts) + "."
    )


def _arch_name(arch: str) -> str:
    from bench.analysis.names import arch_label

    return arch_label(arch)


def source_note(df: pd.DataFrame) -> str:
    sources = sorted(df["source"].unique()) if "source" in df else []
    if sources == ["real"]:
        return "Data: real datasets."
    if "synthetic" in sources:
        which = "synthetic stand-ins" if sources == ["synthetic"] else f"mixed sources ({', '.join(sources)})"
        return f"SYNTHETIC DATA: {which}, not the paper's images; the numbers say nothing about the networks."
    return "Data source not recorded."


# ----------------------------------------------------------------------------- Table 3


#: setting -> (label, the paper's value or None when the paper does not state it)
TABLE3_ROWS: dict[str, tuple[str, Any]] = {
    "batch_size": ("Batch size", 4),
    "lr": ("Learning rate", 0.001),
    "beta1": ("Momentum (Adam beta1)", 0.9),
    "optimizer": ("Optimizer", "adam"),
    "scheduler": ("Learning-rate scheduler", "plateau"),
    "lr_gamma": ("Scheduler decay factor (step, multistep, cyclic)", None),
    "step_size": ("Scheduler step (epochs; step)", None),
    "depth": ("Depth", 5),
    "dilations": ("Dilation rates", "(1, 3, 5)"),
    "levels": ("Levels (MLDR block)", 2),
    "mlr_levels": ("Levels (MLR block)", 2),
    "epochs": ("Epochs", 100),
    "plateau_factor": ("ReduceLROnPlateau factor", None),
    "plateau_patience": ("ReduceLROnPlateau patience", None),
    "width": ("Base width", 32),
    "image_size": ("Image size", 256),
    "n_folds": ("Folds", 5),
    "test_fraction": ("Test fraction", 0.3),
    "inner_fraction": ("Inner validation fraction (cv)", None),
    "init": ("Initialisation", "Xavier (variant not stated)"),
    "augment": ("Augmentation", False),
    "split_seed": ("Split seed", None),
}
#: Paper values that name a family, not one setting: a run matches when its value is in the family.
TABLE3_FAMILIES = {"init": ("xavier_uniform", "xavier_normal")}


def table3(configs: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Hyper-parameters the runs used (from job sidecars, job dicts or TrainConfig dicts) beside the paper's
    Table 3 optimum. Several distinct values across jobs are listed together; bold marks a difference."""
    if not configs:
        raise NoResults("table3 needs at least one config (job sidecars from bench.results.store.sidecars())")
    values: dict[str, set[str]] = {}
    for cfg in configs:
        for k, v in _train_dict(cfg).items():
            values.setdefault(k, set()).add(_fmt_setting(v))
    rows = [
        {
            "setting": label,
            "key": k,
            "value": ", ".join(sorted(values[k])),
            "paper": "not stated" if paper is None else _fmt_setting(paper),
        }
        for k, (label, paper) in TABLE3_ROWS.items()
        if k in values
    ]
    rows += [
        {"setting": k, "key": k, "value": ", ".join(sorted(v)), "paper": "not stated"}
        for k, v in sorted(values.items())
        if k not in TABLE3_ROWS
    ]
    out = pd.DataFrame(rows, columns=["setting", "key", "value", "paper"])
    out.attrs["bold"] = [
        (i, "value")
        for i, r in enumerate(out.itertuples())
        if r.paper != "not stated"
        and r.value != r.paper
        and not set(r.value.split(", ")) <= set(TABLE3_FAMILIES.get(r.key, ()))
    ]
    out.attrs["caption"] = (
        f"Table 3. Hyper-parameters used by {len(configs)} job(s), beside the MILDNet optimum "
        "of the paper's grid search (Adam, ReduceLROnPlateau) and its Methods (width 32: filters "
        "32 to 512; Xavier initialisation, uniform or normal not stated). Bold: differs from the "
        "paper."
    )
    return out


def _train_dict(cfg: dict[str, Any]) -> dict[str, Any]:
    job = cfg.get("job", cfg)
    train = dict(job.get("train", job))
    kwargs = job.get("arch_kwargs")
    if isinstance(kwargs, str) and kwargs.strip():
        kwargs = json.loads(kwargs)
    if isinstance(kwargs, dict):  # tuned architecture arguments (bench tune --grid arch.KEY=...)
        train.update({k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})
    return {k: v for k, v in train.items() if k not in ("device", "threads")}


def _fmt_setting(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(map(str, v)) + ")"
    return str(v)


# ----------------------------------------------------------------------------- convention sensitivity


def sensitivity(df: pd.DataFrame, *, protocol: str = "holdout", split: str | None = None) -> tuple[pd.DataFrame, str]:
    """Does the ranking per dataset change when both-empty images are excluded (Dice re-derived from
    tp/fp/fn with empty = NaN, nnU-Net's rule) or when HD95 replaces HD? Returns (table, one line)."""
    sel = select(df, protocol=protocol, split=split)
    sel = sel.assign(dice_excl=dice_from_counts(sel["tp"], sel["fp"], sel["fn"], empty=np.nan).astype(float))
    means = sel.groupby(["dataset", "arch", *_MODEL])[["dice", "dice_excl", "hd", "hd95"]].mean()
    means = means.groupby(["dataset", "arch"]).mean().reset_index()
    rows = []
    for ds in ordered_datasets(means["dataset"]):
        g, d = means[means["dataset"] == ds], sel[sel["dataset"] == ds]
        order = {m: _ranking(g, m) for m in ("dice", "dice_excl", "hd", "hd95")}
        rows.append(
            {
                "dataset": ds,
                "n_both_empty": int((d["empty_ref"] & d["empty_pred"]).sum()),
                "ranking_dice": order["dice"],
                "ranking_dice_excl_empty": order["dice_excl"],
                "changed_by_empty_rule": order["dice"] != order["dice_excl"],
                "ranking_hd": order["hd"],
                "ranking_hd95": order["hd95"],
                "changed_by_hd95": order["hd"] != order["hd95"],
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["caption"] = (
        "Convention sensitivity: model ranking by mean Dice with both-empty images counted as 1 "
        "vs excluded (n_both_empty: image scores affected), and by HD vs HD95. " + source_note(sel)
    )
    return out, _sensitivity_line(out)


def _ranking(means: pd.DataFrame, metric: str) -> str:
    ranked = ranks(means[["dataset", "arch", metric]].dropna(), metric).sort_values(["rank", "arch"])
    return " > ".join(ranked["arch"])


def _sensitivity_line(out: pd.DataFrame) -> str:
    n = len(out)
    empty = list(out.loc[out["changed_by_empty_rule"], "dataset"]) if n else []
    hd = list(out.loc[out["changed_by_hd95"], "dataset"]) if n else []
    return (
        f"Excluding both-empty images changes the Dice ranking in {len(empty)}/{n} datasets"
        f"{' (' + ', '.join(empty) + ')' if empty else ''}; HD95 instead of HD changes the ranking in "
        f"{len(hd)}/{n}{' (' + ', '.join(hd) + ')' if hd else ''}."
    )
