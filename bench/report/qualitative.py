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
  shown beside every other architecture's prediction of the same image. Architectures whose worst images
  are the same images share one gallery (it would otherwise be drawn several times).

A panel title names the architecture, its score and, for a fold model flagged as not having learned
(``bench.analysis.learning``), "did not learn". Long case ids are shortened in the titles; each
``Panel``'s caption gives the full ids with what is drawn (unit, protocol, fold model, outline colour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.analysis import learning
from bench.analysis.names import arch_label, dataset_label, ordered_archs
from bench.errors import MissingInput, NoResults
from bench.metrics import higher_is_better, metric_name
from bench.results import store
from bench.results.artefacts import DamagedArtefact, verify_file
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
    #: Per architecture, per case: was the fold model that predicted it flagged "did not learn"?
    not_learned: dict[str, tuple[bool, ...]] | None = None


@dataclass(frozen=True)
class Panel:
    """One saved figure of ``qualitative``: its file ``stem``, the ``paths`` written, the architectures whose
    failures it shows (empty for the disagreement grid), the ``cases`` (full ids) and a ``caption`` saying
    what is drawn."""

    stem: str
    paths: tuple[Path, ...]
    archs: tuple[str, ...]
    cases: tuple[str, ...]
    caption: str


#: Case ids longer than this are shortened in panel titles (the caption gives them in full).
TITLE_ID_CHARS = 14


def short_id(case: str, limit: int = TITLE_ID_CHARS) -> str:
    """``case`` as a panel title shows it: unchanged up to ``limit`` characters, else its start and end
    around an ellipsis (a 64-character DSB hash becomes ``0a7d30b2…4a1f``)."""
    if len(case) <= limit:
        return case
    keep = limit - 1
    return f"{case[: keep - keep // 3]}…{case[-(keep // 3) :]}"


def load_grid(results: Path | str, rows: pd.DataFrame, cases: Sequence[str], metric: str = "dice") -> CaseGrid:
    """Images and masks of ``cases`` from the prepared data of the jobs in ``rows`` (``scored_rows``) and
    each architecture's stored prediction; raises ValueError for a case an architecture did not score."""
    from bench.config import Job
    from bench.results.job_data import load_job_data

    results = Path(results)
    sides = {s.get("key"): s for s in store.sidecars(results)}
    archs = ordered_archs(rows["arch"].unique())
    predictions, scores, data, flagged = {}, {}, None, {}
    flags = _flags_by_job(rows)
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
            damaged = verify_file(Path(side["_path"]), side, "predictions")
            if damaged is not None:
                raise DamagedArtefact(f"{damaged}; `bench run` with the same options recomputes that job")
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
        flagged[arch] = tuple(flags.get(str(own.at[c, "job_key"]), False) for c in cases)
    assert data is not None
    idx = data.index(cases)
    return CaseGrid(tuple(cases), data.images[idx], data.masks[idx].astype(bool), predictions, scores, metric, flagged)


def _flags_by_job(rows: pd.DataFrame) -> dict[str, bool]:
    """job_key -> did its fold model not learn (``bench.analysis.learning.job_flags``; unknown: False)."""
    flags = learning.job_flags(rows)
    return {str(k): bool(v) for k, v in zip(flags["job_key"], flags[learning.COLUMN].fillna(False))}


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
        axes[0].set_title(f"Image {r + 1}\n{short_id(case)}", fontsize=7)
        axes[0].set_gid(f"image:{case}")
        axes[1].imshow(grid.truth[r], cmap="gray", vmin=0, vmax=1)
        axes[1].set_title("Ground truth", fontsize=7)
        axes[1].set_gid(f"truth:{case}")
        for ax, arch in zip(axes[2:], archs):
            ax.imshow(grid.predictions[arch][r], cmap="gray", vmin=0, vmax=1)
            if grid.truth[r].any() and not grid.truth[r].all():
                ax.contour(grid.truth[r].astype(float), levels=[0.5], colors="red", linewidths=0.6)
            bad = bool(grid.not_learned and grid.not_learned.get(arch, ())[r : r + 1] == (True,))
            mark = "\ndid not learn" if bad else ""
            ax.set_title(f"{arch_label(arch)}\n{name} {grid.scores[arch][r]:.3f}{mark}", fontsize=7)
            ax.set_gid(f"pred:{arch}:{case}")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


def qualitative(df: pd.DataFrame, results: Path | str, dataset: str, out_dir: Path | str, **options: Any) -> list[Path]:
    """The files of ``qualitative_panels`` (same arguments and keyword options), in order."""
    panels = qualitative_panels(df, results, dataset, out_dir, **options)
    return [p for panel in panels for p in panel.paths]


def qualitative_panels(
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
) -> list[Panel]:
    """Write the qualitative grid of ``dataset`` (``qualitative_<dataset>.png/.pdf``: ``cases``, or the ``n``
    where the architectures disagree most) and, with ``worst > 0``, the failure galleries
    (``failures_<dataset>_<arch>.png/.pdf``: an architecture's ``worst`` worst images beside every architecture;
    architectures with the same worst images share one gallery, named after the first)."""
    from bench.report.figures import _save

    rows = scored_rows(df, dataset, archs=archs, protocol=protocol, fold=fold)
    where = _where(rows)
    synthetic = (rows.get("source", pd.Series(dtype=str)) == "synthetic").any()
    source = " [SYNTHETIC DATA]" if synthetic else ""
    out_dir = Path(out_dir)
    chosen = list(cases) if cases else disagreement_cases(rows, metric, n)
    how = (
        "chosen cases"
        if cases
        else f"the {len(chosen)} images where the architectures disagree most (std of {metric_name(metric)})"
    )
    grid = load_grid(results, rows, chosen, metric)
    stem = f"qualitative_{dataset}"
    panels = [
        Panel(
            stem,
            tuple(_save(grid_figure(grid, f"{dataset_label(dataset)}: {how}; {where}{source}"), out_dir, stem)),
            (),
            tuple(chosen),
            _caption(grid, f"Rows: {how}", where, synthetic),
        )
    ]
    for bad, group in _galleries(rows, worst, metric) if worst > 0 else []:
        names = _names(group)
        same = " (the same images for each)" if len(group) > 1 else ""
        title = (
            f"Failure gallery, {dataset_label(dataset)}: the {len(bad)} worst images of {names} by "
            f"{metric_name(metric)}{same}, beside every architecture; {where}{source}"
        )
        grid = load_grid(results, rows, bad, metric)
        stem = f"failures_{dataset}_{group[0].replace(':', '_')}"
        rows_are = f"Rows: the {len(bad)} worst images of {names} by {metric_name(metric)}{same}"
        panels.append(
            Panel(
                stem,
                tuple(_save(grid_figure(grid, title), out_dir, stem)),
                tuple(group),
                tuple(bad),
                _caption(grid, rows_are, where, synthetic),
            )
        )
    return panels


def _galleries(rows: pd.DataFrame, worst: int, metric: str) -> list[tuple[list[str], list[str]]]:
    """(worst cases, the architectures whose worst cases they are), in architecture order; architectures with
    the same worst images (as a set) share one entry."""
    groups: dict[frozenset[str], tuple[list[str], list[str]]] = {}
    for arch in ordered_archs(rows["arch"].unique()):
        bad = worst_cases(rows, arch, metric, worst)
        groups.setdefault(frozenset(bad), (bad, []))[1].append(arch)
    return list(groups.values())


def _names(archs: Sequence[str]) -> str:
    labels = [arch_label(a) for a in archs]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def _caption(grid: CaseGrid, rows_are: str, where: str, synthetic: bool) -> str:
    """What a qualitative panel draws, in words, with the full case ids (the titles shorten them)."""
    ids = "; ".join(f"{i + 1}: {c}" for i, c in enumerate(grid.cases))
    flagged = sorted({arch_label(a) for a, f in (grid.not_learned or {}).items() if any(f)})
    note = (
        f' Marked "did not learn": the fold model of {_names(flagged)} that predicted the image was flagged '
        f"({learning.RULES})."
        if flagged
        else ""
    )
    data = " Synthetic stand-in data: the pictures say nothing about the networks." if synthetic else ""
    return (
        f"{rows_are} ({ids}). Columns: the image, its ground-truth mask (white: foreground), then each "
        f"architecture's predicted mask (white) with the ground truth outlined in red and its "
        f"{metric_name(grid.metric)} on that image. Unit: one image per row; {where}.{note}{data}"
    )


def _where(rows: pd.DataFrame) -> str:
    protocol = rows["protocol"].iloc[0]
    if protocol == "holdout":
        return f"holdout test set, fold model {int(rows['fold'].iloc[0])} of each architecture"
    return "cv, each image predicted by the fold model that held it out"
