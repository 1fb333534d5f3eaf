"""Figures from the tidy per-image results table: the paper's Fig. 8 box plots, bars with CIs, mean ranks.

Fig. 8 (Gudhe et al. 2021): per dataset, the IoU of each model over a 5-fold CV of the merged
dataset, one box per model, with the paired t-test of MILDNet against each baseline. Here every
image is a point (out-of-fold values under ``cv``; under ``holdout`` each test image's mean over the
fold models), and each box carries the Holm-corrected p of ``bench.stats.paired_test`` and stars.

Figures are built on ``matplotlib.figure.Figure`` (no pyplot state, no backend switch): saving
PNG/PDF works headless. Synthetic data is stated in every title.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats as sps

from bench.learning import figure_note
from bench.stats import default_split, paired_test, per_image, ranks, select, stars
from bench.tables import PAPER_ARCHS, PAPER_DATASETS, _ordered, arch_label, dataset_label, higher_is_better

METRIC_LABELS = {"dice": "Dice (DC)", "iou": "IoU", "hd": "HD (pixels)", "hd95": "HD95 (pixels)"}
FORMATS = ("png", "pdf")
_REF_COLOR, _OTHER_COLOR = "#f4a261", "#a8c5e6"


def _synthetic_tag(df: pd.DataFrame) -> str:
    return " [SYNTHETIC DATA]" if "source" in df and (df["source"] == "synthetic").any() else ""


def _datasets(df: pd.DataFrame, protocol: str, split: str | None = None) -> list[str]:
    sel = df[(df["protocol"] == protocol) & (df["split"] == default_split(protocol, split))]
    return _ordered(sel["dataset"].unique(), PAPER_DATASETS)


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{ext}" for ext in FORMATS]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


# ----------------------------------------------------------------------------- Fig. 8


def draw_fig8(ax: Axes, df: pd.DataFrame, dataset: str, *, reference: str = "mildnet", metric: str = "iou",
              protocol: str = "cv") -> pd.DataFrame:
    """One Fig. 8 panel on ``ax``: boxes + per-image points + p/stars vs ``reference``. Returns the tests."""
    data = per_image(df, dataset=dataset, metric=metric, protocol=protocol)
    archs = _ordered(data.values.columns, PAPER_ARCHS)
    long = data.values[archs].melt(var_name="arch", value_name=metric, ignore_index=False).dropna()
    palette = {a: _REF_COLOR if a == reference else _OTHER_COLOR for a in archs}
    with warnings.catch_warnings():  # seaborn 0.13 passes matplotlib 3.11's deprecated ``vert``
        warnings.simplefilter("ignore", MatplotlibDeprecationWarning)
        sns.boxplot(data=long, x="arch", y=metric, hue="arch", order=archs, palette=palette, showfliers=False,
                    legend=False, ax=ax, linewidth=0.8)
    sns.stripplot(data=long, x="arch", y=metric, order=archs, color="0.2", size=2.5, alpha=0.6, jitter=0.2, ax=ax)
    tests = _tests(df, dataset, reference, metric, protocol) if reference in archs else pd.DataFrame()
    _annotate(ax, long, archs, metric, tests, reference)
    ax.set_xticks(range(len(archs)), [arch_label(a) for a in archs], rotation=30, ha="right", fontsize=8)
    ax.set_xlabel("")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(f"{dataset_label(dataset)}: {data.unit}", fontsize=9)
    return tests


def _tests(df: pd.DataFrame, dataset: str, reference: str, metric: str, protocol: str) -> pd.DataFrame:
    try:
        return paired_test(df, dataset=dataset, metric=metric, reference=reference, protocol=protocol)
    except ValueError as exc:  # unmatched images: shown on the panel as "unpaired", never hidden
        warnings.warn(f"{dataset}: no significance annotations: {exc}", stacklevel=3)
        return pd.DataFrame()


def _annotate(ax: Axes, long: pd.DataFrame, archs: list[str], metric: str, tests: pd.DataFrame,
              reference: str) -> None:
    """Stars and Holm-adjusted p above each box; "ref." over the reference; "unpaired" where no test ran."""
    lo, hi = float(long[metric].min()), float(long[metric].max())
    span = (hi - lo) or 1.0
    p_adj = dict(zip(tests["other"], tests["p_adj"])) if len(tests) else {}
    for x, arch in enumerate(archs):
        text = "ref." if arch == reference else f"{stars(p_adj[arch])}\n{_p(p_adj[arch])}" if arch in p_adj \
            else "unpaired"
        ax.text(x, hi + 0.04 * span, text, ha="center", va="bottom", fontsize=7)
    ax.set_ylim(lo - 0.05 * span, hi + 0.25 * span)


def _p(p: float) -> str:
    return "p=n/a" if np.isnan(p) else "p<.001" if p < 0.001 else f"p={p:.3f}"


def boxplot_fig8(df: pd.DataFrame, dataset: str, reference: str = "mildnet", metric: str = "iou",
                 protocol: str = "cv") -> Figure:
    """Fig. 8 panel for one dataset as its own Figure (one axes)."""
    fig = Figure(figsize=(5.5, 4.0), layout="constrained")
    tests = draw_fig8(fig.add_subplot(), df, dataset, reference=reference, metric=metric, protocol=protocol)
    note = f"paired {tests['test'].iloc[0]}-test vs {arch_label(reference)}, {tests['correction'].iloc[0]}-corrected" \
        if len(tests) else "no paired tests"
    fig.suptitle(f"{METRIC_LABELS.get(metric, metric)}, {protocol}; {note}{_synthetic_tag(df)}"
                 f"{figure_note(df[(df['protocol'] == protocol) & (df['dataset'] == dataset)], 90)}", fontsize=9)
    return fig


def fig8_figure(df: pd.DataFrame, *, reference: str = "mildnet", metric: str = "iou", protocol: str = "cv",
                datasets: Sequence[str] | None = None) -> Figure:
    """All Fig. 8 panels, (a), (b), ... one per dataset, in one Figure."""
    names = list(datasets) if datasets is not None else _datasets(df, protocol)
    if not names:
        raise ValueError(f"no {protocol} results to plot")
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(5.0 * ncols, 4.0 * nrows), layout="constrained")
    for i, ds in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        draw_fig8(ax, df, ds, reference=reference, metric=metric, protocol=protocol)
        ax.set_title(f"({chr(97 + i)}) " + ax.get_title(), fontsize=9)
    fig.suptitle(f"Fig. 8: {METRIC_LABELS.get(metric, metric)} per image, paired tests vs {arch_label(reference)} "
                 f"(Holm){_synthetic_tag(df)}{figure_note(df[df['protocol'] == protocol])}", fontsize=10)
    return fig


def fig8(df: pd.DataFrame, out_dir: Path | str, *, reference: str = "mildnet", metric: str = "iou",
         protocol: str = "cv") -> list[Path]:
    """Save one panel per dataset (``fig8_<dataset>.png/.pdf``) and the combined ``fig8.png/.pdf``."""
    out_dir, paths = Path(out_dir), []
    for ds in _datasets(df, protocol):
        paths += _save(boxplot_fig8(df, ds, reference=reference, metric=metric, protocol=protocol), out_dir,
                       f"fig8_{ds}")
    return paths + _save(fig8_figure(df, reference=reference, metric=metric, protocol=protocol), out_dir, "fig8")


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
    lo, hi = sps.t.interval(level, len(values) - 1, loc=mean, scale=sps.sem(values))
    return mean, float(lo), float(hi)


def bar_chart(df: pd.DataFrame, out_dir: Path | str, *, protocol: str | None = None,
              metrics: Sequence[str] = ("dice", "iou")) -> list[Path]:
    """Per dataset, mean Dice and IoU of each arch over images with 95% CIs (``bars.png/.pdf``)."""
    fig = bar_figure(df, protocol=protocol, metrics=metrics)
    return _save(fig, Path(out_dir), "bars")


def bar_figure(df: pd.DataFrame, *, protocol: str | None = None, metrics: Sequence[str] = ("dice", "iou")) -> Figure:
    protocol = _default_protocol(df, protocol)
    names = _datasets(df, protocol)
    fig = Figure(figsize=(max(5.0, 1.0 + 0.8 * 8), 3.2 * len(names)), layout="constrained")
    unit = ""
    for i, ds in enumerate(names):
        ax = fig.add_subplot(len(names), 1, i + 1)
        unit = _bars(ax, df, ds, protocol, metrics)
    fig.suptitle(f"Mean over {unit} with 95% t-CI{_synthetic_tag(df)}", fontsize=10)
    return fig


def _bars(ax: Axes, df: pd.DataFrame, dataset: str, protocol: str, metrics: Sequence[str]) -> str:
    width = 0.8 / len(metrics)
    unit = ""
    for j, m in enumerate(metrics):
        data = per_image(df, dataset=dataset, metric=m, protocol=protocol)
        archs, unit = _ordered(data.values.columns, PAPER_ARCHS), data.unit
        stats = np.array([mean_ci(data.values[a].to_numpy(float)) for a in archs])
        x = np.arange(len(archs)) + (j - (len(metrics) - 1) / 2) * width
        err = np.abs(stats[:, 1:].T - stats[:, 0])
        ax.bar(x, stats[:, 0], width, yerr=err, capsize=2, label=METRIC_LABELS.get(m, m))
        ax.set_xticks(range(len(archs)), [arch_label(a) for a in archs], rotation=30, ha="right", fontsize=8)
    ax.set_title(dataset_label(dataset), fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return unit


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
    ax.set_xlabel(f"mean rank by {METRIC_LABELS.get(metric, metric)} "
                  f"({'higher' if higher_is_better(metric) else 'lower'} is better; 1 = best)")
    n = int(table["n_datasets"].max()) if len(table) else 0
    ax.set_title(f"Mean rank over {n} dataset(s), {_default_protocol(df, protocol)}{_synthetic_tag(df)}", fontsize=9)
    return _save(fig, Path(out_dir), f"ranking_{metric}")
