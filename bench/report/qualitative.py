"""Side-by-side predictions (the paper's Figs. 9-14) and failure galleries, from what a sweep stored.

Nothing retrains: the predictions are the ones each job stored (``<stem>.pred.npz``, every scored
image), the images and masks come from the prepared data the job trained on (the preprocessing
cache), and each panel's score is the job's stored per-image row.

One fold model per architecture is shown, the same fold for every architecture: under ``holdout``
every fold model scores the whole test set, so the grid uses one fold (the lowest every architecture
has, or the one asked for); under ``cv`` each image is scored by exactly one fold model, the one that
held it out. Cases are chosen by the caller or automatically:

- **disagreement**: the images where the architectures' scores differ most (largest standard
  deviation of the metric across architectures);
- **failure gallery**: an architecture's worst images by the metric (lowest Dice/IoU, highest HD),
  shown beside every other architecture's prediction of the same image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.analysis.names import arch_label, dataset_label, ordered_archs
from bench.errors import MissingInput, NoResults
from bench.metrics import higher_is_better, metric_name
from bench.results import store
from bench.results.predictions import load_predictions


def scored_rows(
    df: pd.DataFrame,
    dataset: str,
    *,
    archs: Sequence[str] | None = None,
    protocol: str | None = None,
    fold: int | None = None,
) -> pd.DataFrame:
    """One stored row per (arch, case_id) of ``dataset``: the scored split (holdout: test; cv: val) of one
    fold model per architecture (see the module docstring), input-size rows, the lowest seed.

    Raises ValueError naming what is missing (dataset, architectures, fold)."""
    rows = df[df["dataset"] == dataset]
    if "eval_resolution" in rows:
        rows = rows[rows["eval_resolution"].fillna("input") == "input"]
    rows = rows[rows["split"].isin(["val", "test"])]
    if rows.empty:
        have = sorted(df["dataset"].unique()) if len(df) else []
        raise NoResults(f"no scored rows of {dataset!r} in the results; datasets with results: {have or 'none'}")
    if protocol is None:
        protocol = "holdout" if ((rows["protocol"] == "holdout") & (rows["split"] == "test")).any() else "cv"
    rows = rows[(rows["protocol"] == protocol) & (rows["split"] == ("test" if protocol == "holdout" else "val"))]
    if archs is not None:
        missing = sorted(set(archs) - set(rows["arch"]))
        if missing:
            raise NoResults(
                f"{dataset}/{protocol}: no results for {', '.join(missing)}; "
                f"have {', '.join(sorted(rows['arch'].unique())) or 'none'}"
            )
        rows = rows[rows["arch"].isin(archs)]
    if rows.empty:
        raise NoResults(f"{dataset}: no {protocol} results")
    rows = rows[rows["seed"] == rows["seed"].min()]
    if protocol == "holdout":
        common = set.intersection(*(set(g["fold"]) for _, g in rows.groupby("arch")))
        if fold is None:
            if not common:
                raise NoResults(f"{dataset}: the architectures share no fold model; choose one with --fold")
            fold = min(common)
        elif fold not in common:
            raise NoResults(
                f"{dataset}: fold {fold} is not finished for every architecture (common: {sorted(common) or 'none'})"
            )
        rows = rows[rows["fold"] == fold]
    dup = rows.duplicated(["arch", "case_id"])
    if dup.any():
        raise NoResults(
            f"{dataset}: several stored rows for the same image and architecture (e.g. "
            f"{rows.loc[dup, 'case_id'].iloc[0]}: jobs of different settings); choose one with --where"
        )
    return rows.reset_index(drop=True)


def disagreement_cases(rows: pd.DataFrame, metric: str = "dice", n: int = 3) -> list[str]:
    """The ``n`` images whose ``metric`` varies most across architectures (std, ddof=0); ties by case id.
    Only images every architecture scored count."""
    table = rows.pivot_table(index="case_id", columns="arch", values=metric, aggfunc="first").dropna()
    spread = table.std(axis=1, ddof=0).rename("spread").reset_index()
    return spread.sort_values(["spread", "case_id"], ascending=[False, True])["case_id"].head(n).tolist()


def worst_cases(rows: pd.DataFrame, arch: str, metric: str = "dice", n: int = 3) -> list[str]:
    """``arch``'s ``n`` worst images by ``metric`` (lowest Dice/IoU, highest HD); ties by case id."""
    own = rows[rows["arch"] == arch]
    if own.empty:
        raise NoResults(f"no rows of {arch!r}; have {', '.join(sorted(rows['arch'].unique()))}")
    best_high = higher_is_better(metric)
    return own.sort_values([metric, "case_id"], ascending=[best_high, True])["case_id"].head(n).tolist()


@dataclass(frozen=True)
class CaseGrid:
    """What a qualitative grid draws: ``images`` N x C x H x W in [0, 1], ``truth`` N x H x W bool, per
    architecture its predicted masks N x H x W bool and its per-image scores (length N)."""

    cases: tuple[str, ...]
    images: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    metric: str = "dice"


def load_grid(results: Path | str, rows: pd.DataFrame, cases: Sequence[str], metric: str = "dice") -> CaseGrid:
    """Images and masks of ``cases`` from the prepared data of the jobs in ``rows`` (``scored_rows``) and
    each architecture's stored prediction; raises ValueError for a case an architecture did not score."""
    from bench.config import Job
    from bench.results.job_data import load_job_data

    results = Path(results)
    sides = {s.get("key"): s for s in store.sidecars(results)}
    archs = ordered_archs(rows["arch"].unique())
    predictions, scores, data = {}, {}, None
    for arch in archs:
        own = rows[rows["arch"] == arch].set_index("case_id")
        missing = [c for c in cases if c not in own.index]
        if missing:
            raise NoResults(
                f"{arch} has no stored score for {missing[:5]} (cases must come from the scored split: "
                f"{', '.join(sorted(own.index)[:5])}, ...)"
            )
        by_job: dict[str, list[str]] = {}
        for case in cases:
            by_job.setdefault(str(own.at[case, "job_key"]), []).append(case)
        masks = {}
        for key, job_cases in by_job.items():
            side = sides.get(key)
            if side is None or side.get("status") != "ok":
                raise NoResults(f"{arch}: job {key} of the rows has no finished sidecar under {results}/runs")
            pred_path = Path(side["_path"]).with_suffix(".pred.npz")
            if not pred_path.is_file():
                raise MissingInput(f"{pred_path}: the job's stored predictions are missing")
            ids, _, stored = load_predictions(pred_path)
            where = {c: i for i, c in enumerate(ids)}
            for case in job_cases:
                if case not in where:
                    raise NoResults(f"{pred_path} holds no prediction for {case}")
                masks[case] = stored[where[case]]
            if data is None:
                data, _ = load_job_data(Job.from_dict(side["job"]), results / "cache")
        predictions[arch] = np.stack([masks[c] for c in cases])
        scores[arch] = own.loc[list(cases), metric].to_numpy(float)
    assert data is not None
    idx = data.index(cases)
    return CaseGrid(tuple(cases), data.images[idx], data.masks[idx].astype(bool), predictions, scores, metric)


def _display(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """A C x H x W image as something imshow draws: RGB for 3 channels, else the first channel in grey."""
    if image.shape[0] == 3:
        return np.clip(np.transpose(image, (1, 2, 0)), 0, 1), {}
    return image[0], {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}


def grid_figure(grid: CaseGrid, title: str) -> Figure:
    """One row per case: image, ground truth, then each architecture's predicted mask (ground-truth
    outline in red) with its score in the panel title. Panels carry ``gid`` ``image:<case>``,
    ``truth:<case>`` and ``pred:<arch>:<case>``."""
    archs = list(grid.predictions)
    ncols, nrows = 2 + len(archs), len(grid.cases)
    fig = Figure(figsize=(1.9 * ncols, 2.1 * nrows + 0.6), layout="constrained")
    name = metric_name(grid.metric)
    for r, case in enumerate(grid.cases):
        axes = [fig.add_subplot(nrows, ncols, r * ncols + c + 1) for c in range(ncols)]
        img, kw = _display(grid.images[r])
        axes[0].imshow(img, **kw)
        axes[0].set_title(f"Image\n{case}", fontsize=7)
        axes[0].set_gid(f"image:{case}")
        axes[1].imshow(grid.truth[r], cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("Ground truth", fontsize=7)
        axes[1].set_gid(f"truth:{case}")
        for ax, arch in zip(axes[2:], archs):
            ax.imshow(grid.predictions[arch][r], cmap="gray", vmin=0, vmax=1)
            if grid.truth[r].any() and not grid.truth[r].all():
                ax.contour(grid.truth[r].astype(float), levels=[0.5], colors="red", linewidths=0.6)
            ax.set_title(f"{arch_label(arch)}\n{name} {grid.scores[arch][r]:.3f}", fontsize=7)
            ax.set_gid(f"pred:{arch}:{case}")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


def qualitative(
    df: pd.DataFrame,
    results: Path | str,
    dataset: str,
    out_dir: Path | str,
    *,
    archs: Sequence[str] | None = None,
    cases: Sequence[str] | None = None,
    worst: int = 0,
    n: int = 3,
    metric: str = "dice",
    protocol: str | None = None,
    fold: int | None = None,
) -> list[Path]:
    """Write the qualitative grid of ``dataset`` (``qualitative_<dataset>.png/.pdf``: ``cases``, or the ``n``
    where the architectures disagree most) and, with ``worst > 0``, one failure gallery per architecture
    (``failures_<dataset>_<arch>.png/.pdf``: its ``worst`` worst images beside every architecture)."""
    from bench.report.figures import _save

    rows = scored_rows(df, dataset, archs=archs, protocol=protocol, fold=fold)
    where = _where(rows)
    source = " [SYNTHETIC DATA]" if (rows.get("source", pd.Series(dtype=str)) == "synthetic").any() else ""
    out_dir, paths = Path(out_dir), []
    chosen = list(cases) if cases else disagreement_cases(rows, metric, n)
    how = (
        "chosen cases"
        if cases
        else f"the {len(chosen)} images where the architectures disagree most (std of {metric_name(metric)})"
    )
    grid = load_grid(results, rows, chosen, metric)
    paths += _save(
        grid_figure(grid, f"{dataset_label(dataset)}: {how}; {where}{source}"), out_dir, f"qualitative_{dataset}"
    )
    for arch in ordered_archs(rows["arch"].unique()) if worst > 0 else []:
        bad = worst_cases(rows, arch, metric, worst)
        title = (
            f"Failure gallery, {dataset_label(dataset)}: the {len(bad)} worst images of {arch_label(arch)} by "
            f"{metric_name(metric)}, beside every architecture; {where}{source}"
        )
        paths += _save(
            grid_figure(load_grid(results, rows, bad, metric), title),
            out_dir,
            f"failures_{dataset}_{arch.replace(':', '_')}",
        )
    return paths


def _where(rows: pd.DataFrame) -> str:
    protocol = rows["protocol"].iloc[0]
    if protocol == "holdout":
        return f"holdout test set, fold model {int(rows['fold'].iloc[0])} of each architecture"
    return "cv, each image predicted by the fold model that held it out"
