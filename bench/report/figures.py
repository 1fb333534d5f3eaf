"""Figures from the tidy per-image results table: the paper's Fig. 8 box plots, bars with CIs, mean ranks.

Fig. 8 (Gudhe et al. 2021): per dataset, the IoU of each model over a 5-fold CV of the merged
dataset, one box per model, with the paired t-test of MILDNet against each baseline. Here every
unit of analysis is a point: by default the independent unit (an LGG patient, an ISBI/GlaS source
image: the mean of its out-of-fold images under ``cv``, of its test images averaged over the fold
models under ``holdout``), or every image with ``unit="image"``; each box carries the Holm-corrected p
of ``bench.analysis.stats.paired_test`` and stars, and each panel's title names the unit.

What qualifies a star is drawn with it: an architecture with fold models that did not learn is marked
"†" and gets no stars by default ("no stars: did not learn"; ``stars_untrained=True`` draws them anyway);
under ``cv`` the fold-level corrected test's p stands under the unit-level p and the stars follow the more
conservative verdict; under ``holdout`` the title says that training randomness is not in the tests; a
dashed line marks the better trivial floor over the same units.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state, no backend switch): saving
PNG/PDF works headless. Synthetic data is stated in every title.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats as sps

from bench.analysis.learning import figure_note, model_flags
from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
from bench.analysis.ranking import rank_distributions, small_n_warning
from bench.analysis.seeds import count_text
from bench.analysis.stats import (
    RANDOMNESS_NOTE,
    REFERENCE,
    AnalysisWarning,
    PerImage,
    better_floor,
    default_split,
    paired_test,
    per_image,
    ranks,
    resolve_protocol,
    select,
    stars,
)
from bench.errors import NoResults
from bench.metrics import axis_label, higher_is_better

FORMATS = ("png", "pdf")
_REF_COLOR, _OTHER_COLOR = "#f4a261", "#a8c5e6"


def _synthetic_tag(df: pd.DataFrame) -> str:
    return " [SYNTHETIC DATA]" if "source" in df and (df["source"] == "synthetic").any() else ""


def _datasets(df: pd.DataFrame, protocol: str, split: str | None = None) -> list[str]:
    sel = df[(df["protocol"] == protocol) & (df["split"] == default_split(protocol, split))]
    return ordered_datasets(sel["dataset"].unique())


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{ext}" for ext in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


# ----------------------------------------------------------------------------- Fig. 8


def draw_fig8(
    ax: Axes,
    df: pd.DataFrame,
    dataset: str,
    *,
    reference: str = REFERENCE,
    metric: str = "iou",
    protocol: str = "cv",
    unit: str = "group",
    allow_unequal_folds: bool = False,
    stars_untrained: bool = False,
) -> pd.DataFrame:
    """One Fig. 8 panel on ``ax``: boxes + per-unit points + p/stars vs ``reference``, the better floor as a
    dashed line, architectures that did not learn marked "†". Returns the tests."""
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol, unit=unit)
    archs = ordered_archs(data.values.columns)
    long = data.unit_values()[archs].melt(var_name="arch", value_name=metric, ignore_index=False).dropna()
    palette = {a: _REF_COLOR if a == reference else _OTHER_COLOR for a in archs}
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        sns.boxplot(
            data=long,
            x="arch",
            y=metric,
            hue="arch",
            order=archs,
            palette=palette,
            showfliers=False,
            legend=False,
            ax=ax,
            linewidth=0.8,
        )
    sns.stripplot(data=long, x="arch", y=metric, order=archs, color="0.2", size=2.5, alpha=0.6, jitter=0.2, ax=ax)
    tests = (
        _tests(df, dataset, reference, metric, protocol, unit, allow_unequal_folds)
        if reference in archs
        else pd.DataFrame()
    )
    untrained = _untrained(data)
    _annotate(ax, long, archs, metric, tests, reference, untrained if not stars_untrained else set())
    floor, value = better_floor(data, metric)
    if floor:
        ax.axhline(value, color="0.4", linestyle="--", linewidth=0.8)
        ax.text(len(archs) - 0.5, value, f"{floor.replace('_', ' ')} (floor)", fontsize=6, ha="right", va="bottom")
    labels = [arch_label(a) + (" †" if a in untrained else "") for a in archs]
    ax.set_xticks(range(len(archs)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(axis_label(metric))
    n_units = len(data.unit_values())
    ax.set_title(f"{dataset_label(dataset)}: n = {n_units} {data.unit}", fontsize=8, wrap=True)
    return tests


def _tests(
    df: pd.DataFrame, dataset: str, reference: str, metric: str, protocol: str, unit: str, allow: bool = False
) -> pd.DataFrame:
    try:
        return paired_test(
            df,
            dataset=dataset,
            metric=metric,
            reference=reference,
            protocol=protocol,
            unit=unit,
            allow_unequal_folds=allow,
        )
    except ValueError as exc:  # unmatched images: shown on the panel as "unpaired", never hidden
        if "differ in more than the architecture" in str(exc) or "unequal numbers of fold models" in str(exc):
            raise
        warnings.warn(f"{dataset}: no significance annotations: {exc}", AnalysisWarning, stacklevel=3)
        return pd.DataFrame()


def _untrained(data: PerImage) -> set[str]:
    """Architectures of a panel with at least one fold model that did not learn."""
    rows = data.rows
    if rows is None or rows.empty:
        return set()
    flags = model_flags(rows)
    return set(flags.loc[flags["n_not_learned"].fillna(0).astype(int) > 0, "arch"])


def _annotate(
    ax: Axes,
    long: pd.DataFrame,
    archs: list[str],
    metric: str,
    tests: pd.DataFrame,
    reference: str,
    untrained: set[str] = frozenset(),  # type: ignore[assignment]
) -> None:
    """Stars and adjusted p above each box (under cv also the fold-level p; stars follow the more
    conservative verdict); "ref." over the reference; "unpaired" where no test ran; "no stars: did not
    learn" where either side did not learn."""
    lo, hi = float(long[metric].min()), float(long[metric].max())
    span = (hi - lo) or 1.0
    rows = {r.other: r for r in tests.itertuples()} if len(tests) else {}
    for x, arch in enumerate(archs):
        if arch == reference:
            text = "ref." + ("\n†" if arch in untrained else "")
        elif arch not in rows:
            text = "unpaired"
        elif arch in untrained or reference in untrained:
            text = "no stars:\ndid not learn"
        else:
            text = _star_text(rows[arch])
        ax.text(x, hi + 0.04 * span, text, ha="center", va="bottom", fontsize=6.5)
    ax.set_ylim(lo - 0.05 * span, hi + 0.3 * span)


def _star_text(r: Any) -> str:
    p_adj, significant = float(r.p_adj), bool(r.significant)
    mark = stars(p_adj) if significant or np.isnan(p_adj) else "ns"
    p_folds = getattr(r, "p_adj_folds", np.nan)
    if p_folds is None or pd.isna(p_folds):
        return f"{mark}\n{_p(p_adj)}"
    return f"{mark}\n{_p(p_adj)}\nfolds {_p(float(p_folds))}"


def _p(p: float) -> str:
    return "p=n/a" if np.isnan(p) else "p<.001" if p < 0.001 else f"p={p:.3f}"


def fig8_caption(tests: pd.DataFrame, metric: str, protocol: str, reference: str, note: str = "") -> str:
    """The caption line of a Fig. 8 figure: what was tested, over which unit, the protocol and its caveat."""
    if tests.empty:
        return f"{axis_label(metric)}, {protocol}; no paired tests"
    units = sorted(set(tests["unit"]))
    return (
        f"{axis_label(metric)}, {protocol}: paired {tests['test'].iloc[0]}-test vs "
        f"{arch_label(reference)}, {tests['correction'].iloc[0]}-corrected; unit: {'; '.join(units)}"
        + (f". {note}" if note else "")
        + ". "
        + protocol_caveat(protocol)
    )


def protocol_caveat(protocol: str) -> str:
    """What the stars of a Fig. 8 panel do and do not include, and the marks on it."""
    marks = "† = fold models that did not learn (no stars); dashed line = the better trivial floor."
    if protocol == "cv":
        return (
            "Stars: the more conservative of the unit-level test and the fold-level corrected test "
            "(Nadeau & Bengio 2003, includes training variability; its p under 'folds'). " + marks
        )
    return "Holdout: " + RANDOMNESS_NOTE + ". " + marks


def boxplot_fig8(
    df: pd.DataFrame,
    dataset: str,
    reference: str = REFERENCE,
    metric: str = "iou",
    protocol: str | None = "cv",
    unit: str = "group",
    allow_unequal_folds: bool = False,
) -> Figure:
    """Fig. 8 panel for one dataset as its own Figure (one axes); ``protocol=None``: the one with results."""
    protocol, note = resolve_protocol(df, dataset, protocol)
    fig = Figure(figsize=(5.5, 4.6), layout="constrained")
    tests = draw_fig8(
        fig.add_subplot(),
        df,
        dataset,
        reference=reference,
        metric=metric,
        protocol=protocol,
        unit=unit,
        allow_unequal_folds=allow_unequal_folds,
    )
    fig.suptitle(
        fig8_caption(tests, metric, protocol, reference, note if protocol != "cv" else "")
        + _synthetic_tag(df)
        + figure_note(df[(df["protocol"] == protocol) & (df["dataset"] == dataset)], 90),
        fontsize=8,
        wrap=True,
    )
    return fig


def fig8_figure(
    df: pd.DataFrame,
    *,
    reference: str = REFERENCE,
    metric: str = "iou",
    protocol: str | None = "cv",
    datasets: Sequence[str] | None = None,
    unit: str = "group",
    allow_unequal_folds: bool = False,
) -> Figure:
    """All Fig. 8 panels, (a), (b), ... one per dataset, in one Figure; ``protocol=None``: cv if it has
    results, else holdout (said in the title)."""
    protocol, note = resolve_protocol(df, None, protocol)
    names = list(datasets) if datasets is not None else _datasets(df, protocol)
    if not names:
        raise NoResults(f"no {protocol} results to plot")
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 4.3 * nrows), layout="constrained")
    for i, ds in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        draw_fig8(
            ax,
            df,
            ds,
            reference=reference,
            metric=metric,
            protocol=protocol,
            unit=unit,
            allow_unequal_folds=allow_unequal_folds,
        )
        ax.set_title(f"({chr(97 + i)}) " + ax.get_title(), fontsize=8, wrap=True)
    level = "independent units (patients, source images)" if unit == "group" else "images (not independent)"
    fig.suptitle(
        f"Fig. 8: {axis_label(metric)} per unit of analysis ({level}), {protocol}, paired "
        f"tests vs {arch_label(reference)} (Holm)"
        + (f". {note}" if protocol != "cv" and note else "")
        + ". "
        + protocol_caveat(protocol)
        + _synthetic_tag(df)
        + f"; {count_text(df[df['protocol'] == protocol])}"
        + figure_note(df[df["protocol"] == protocol]),
        fontsize=9,
        wrap=True,
    )
    return fig


def fig8(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    reference: str = REFERENCE,
    metric: str = "iou",
    protocol: str | None = "cv",
    unit: str = "group",
    allow_unequal_folds: bool = False,
) -> list[Path]:
    """Save one panel per dataset (``fig8_<dataset>.png/.pdf``) and the combined ``fig8.png/.pdf``."""
    protocol, _ = resolve_protocol(df, None, protocol)
    out_dir, paths = Path(out_dir), []
    kwargs = {"reference": reference, "metric": metric, "protocol": protocol, "unit": unit}
    for ds in _datasets(df, protocol):
        paths += _save(boxplot_fig8(df, ds, allow_unequal_folds=allow_unequal_folds, **kwargs), out_dir, f"fig8_{ds}")
    return paths + _save(fig8_figure(df, allow_unequal_folds=allow_unequal_folds, **kwargs), out_dir, "fig8")


# ----------------------------------------------------------------------------- bars and ranks


def _default_protocol(df: pd.DataFrame, protocol: str | None) -> str:
    if protocol is not None:
        return protocol
    return "holdout" if ((df["protocol"] == "holdout") & (df["split"] == "test")).any() else "cv"


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): t-based confidence interval of the mean (scipy.stats.t.interval)."""
    values = values[~np.isnan(values)]
    mean = float(np.mean(values)) if len(values) else np.nan
    if len(values) < 2:
        return mean, np.nan, np.nan
    sem = float(sps.sem(values))
    if sem == 0:  # every unit equal: the interval is the point (scipy would warn and return NaN)
        return mean, mean, mean
    lo, hi = sps.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return mean, float(lo), float(hi)


def bar_chart(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    protocol: str | None = None,
    metrics: Sequence[str] = ("dice", "iou"),
    unit: str = "group",
) -> list[Path]:
    """Per dataset, mean Dice and IoU of each arch over the units of analysis with 95% CIs (``bars.png/.pdf``)."""
    fig = bar_figure(df, protocol=protocol, metrics=metrics, unit=unit)
    return _save(fig, Path(out_dir), "bars")


def bar_figure(
    df: pd.DataFrame, *, protocol: str | None = None, metrics: Sequence[str] = ("dice", "iou"), unit: str = "group"
) -> Figure:
    protocol = _default_protocol(df, protocol)
    names = _datasets(df, protocol)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.8 * 8), 3.2 * len(names)), layout="constrained")
    for i, ds in enumerate(names):
        ax = fig.add_subplot(len(names), 1, i + 1)
        _bars(ax, df, ds, protocol, metrics, unit)
    fig.suptitle(
        f"Mean over the units of analysis (named per panel) with 95% t-CI, {protocol}{_synthetic_tag(df)}; "
        "† = fold models that did not learn",
        fontsize=10,
    )
    return fig


def _bars(ax: Axes, df: pd.DataFrame, dataset: str, protocol: str, metrics: Sequence[str], unit: str) -> str:
    width = 0.8 / len(metrics)
    text = ""
    for j, m in enumerate(metrics):
        data = per_image(df, dataset=dataset, metric=m, protocol=protocol, unit=unit)
        archs, text = ordered_archs(data.values.columns), data.unit
        values, untrained = data.unit_values(), _untrained(data)
        stats = np.array([mean_ci(values[a].to_numpy(float)) for a in archs])
        x = np.arange(len(archs)) + (j - (len(metrics) - 1) / 2) * width
        err = np.abs(stats[:, 1:].T - stats[:, 0])
        ax.bar(x, stats[:, 0], width, yerr=err, capsize=2, label=axis_label(m))
        labels = [arch_label(a) + (" †" if a in untrained else "") for a in archs]
        ax.set_xticks(range(len(archs)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_title(f"{dataset_label(dataset)}: {text}", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    return text


def mean_ranks(df: pd.DataFrame, *, metric: str = "dice", protocol: str | None = None) -> pd.DataFrame:
    """Mean rank of each arch across datasets (1 = best), from per-image means; columns arch, mean_rank, n_datasets."""
    protocol = _default_protocol(df, protocol)
    sel = select(df, protocol=protocol)
    means = sel.groupby(["dataset", "arch", "case_id"])[metric].mean().groupby(["dataset", "arch"]).mean()
    ranked = ranks(means.reset_index(), metric)
    out = ranked.groupby("arch")["rank"].agg(mean_rank="mean", n_datasets="count").reset_index()
    return out.sort_values(["mean_rank", "arch"]).reset_index(drop=True)


def ranking(df: pd.DataFrame, out_dir: Path | str, *, metric: str = "dice", protocol: str | None = None) -> list[Path]:
    """Horizontal bars of each arch's mean rank across datasets (``ranking.png/.pdf``)."""
    table = mean_ranks(df, metric=metric, protocol=protocol)
    fig = Figure(figsize=(5.5, 0.4 * len(table) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh([arch_label(a) for a in table["arch"]], table["mean_rank"], color=_OTHER_COLOR)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"mean rank by {axis_label(metric)} ({'higher' if higher_is_better(metric) else 'lower'} is better; 1 = best)"
    )
    n = int(table["n_datasets"].max()) if len(table) else 0
    ax.set_title(f"Mean rank over {n} dataset(s), {_default_protocol(df, protocol)}{_synthetic_tag(df)}", fontsize=9)
    return _save(fig, Path(out_dir), f"ranking_{metric}")


def rank_figure(
    df: pd.DataFrame,
    *,
    metric: str = "dice",
    protocol: str | None = None,
    unit: str = "group",
    n_boot: int = 1000,
    seed: int = 0,
) -> Figure:
    """Bootstrap rank distributions (``bench.analysis.ranking``): per dataset (and across datasets) a grid of
    P(rank = r) per architecture, architectures ordered by bootstrap mean rank."""

    protocol = _default_protocol(df, protocol)
    dists = rank_distributions(df, metric=metric, protocol=protocol, unit=unit, n_boot=n_boot, seed=seed)
    ncols = min(3, len(dists))
    nrows = -(-len(dists) // ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.6 * nrows), layout="constrained")
    for i, (ds, (means, _, boot, text)) in enumerate(dists.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        order = np.argsort(boot.mean(axis=0), kind="stable")
        k = boot.shape[1]
        prob = np.array([[(boot[:, j] == r).mean() for r in range(1, k + 1)] for j in order])
        ax.imshow(prob, cmap="Blues", vmin=0, vmax=1, aspect="auto")
        for (row, col), v in np.ndenumerate(prob):
            if v >= 0.005:
                ax.text(col, row, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.6 else "0.2")
        ax.set_xticks(range(k), [str(r) for r in range(1, k + 1)], fontsize=7)
        ax.set_yticks(range(k), [arch_label(means.columns[j]) for j in order], fontsize=7)
        ax.set_xlabel("rank (1 = best)", fontsize=7)
        few = small_n_warning(means.attrs.get("n_units"))
        ax.set_title(
            f"{ds if ds == 'all datasets' else dataset_label(ds)}: {text}" + (f"\nWARNING: {few}" if few else ""),
            fontsize=7,
            wrap=True,
        )
    fig.suptitle(
        f"P(rank) by mean {axis_label(metric)}, {protocol}: {n_boot} bootstrap resamples of "
        f"the units, seed {seed}{_synthetic_tag(df)}",
        fontsize=9,
        wrap=True,
    )
    return fig


def rank_uncertainty(
    df: pd.DataFrame,
    out_dir: Path | str,
    *,
    metric: str = "dice",
    protocol: str | None = None,
    unit: str = "group",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Path]:
    """Save ``rank_uncertainty_<metric>.png/.pdf`` (``rank_figure``)."""
    fig = rank_figure(df, metric=metric, protocol=protocol, unit=unit, n_boot=n_boot, seed=seed)
    return _save(fig, Path(out_dir), f"rank_uncertainty_{metric}")
