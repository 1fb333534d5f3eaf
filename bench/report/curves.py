"""Learning curves: training and selection loss per epoch of every finished job, from its sidecar.

Each job's sidecar holds ``history`` (one record per epoch: ``epoch``, ``train_loss``, ``select_loss``)
and ``best_epoch`` (the epoch whose weights were kept: lowest selection loss). The figure has one
panel per dataset (and protocol, when a folder holds both); each architecture is one colour: its
mean selection loss over the fold models (solid), the band from the lowest to the highest fold model
(fold spread), its mean training loss (dashed), and one marker per fold model at the epoch it chose.
A curve that never moved is named in the legend ("flat"), beside the "did not learn" count of the
sidecars, so a network that still predicts background is visible at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.analysis.names import arch_label, dataset_label, ordered_archs, ordered_datasets
from bench.errors import InvalidInput, NoResults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A loss curve is "flat" when its range over the epochs is below this fraction (1%) of its first value.
FLAT_TOLERANCE = 0.01
KEYS = ("dataset", "arch", "protocol", "fold", "seed", "job_key")


def history_table(sidecars: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per (finished job, epoch): the ``KEYS``, ``epoch``, ``train_loss``, ``select_loss``,
    ``best_epoch``, ``did_not_learn`` (True/False, NA when the sidecar predates the flag), ``source``.

    Raises ValueError when no finished job recorded a history."""
    rows = []
    for side in sidecars:
        history = side.get("history")
        if side.get("status") != "ok" or not history:
            continue
        job = side.get("job") or {}
        if "best_epoch" not in side:
            raise InvalidInput(f"{side.get('_path', job)}: a finished job's sidecar without best_epoch")
        learning = side.get("learning")
        meta = {
            "dataset": job.get("dataset"),
            "arch": job.get("arch"),
            "protocol": job.get("protocol"),
            "fold": int(job.get("fold", 0)),
            "seed": int(job.get("seed", 0)),
            "job_key": side.get("key"),
            "source": job.get("source", "synthetic" if job.get("data_root") is None else "real"),
            "best_epoch": int(side["best_epoch"]),
            "did_not_learn": pd.NA if learning is None else bool(learning.get("did_not_learn")),
        }
        for record in history:
            rows.append(
                {
                    **meta,
                    "epoch": int(record["epoch"]),
                    "train_loss": float(record["train_loss"]),
                    "select_loss": float(record["select_loss"]),
                }
            )
    if not rows:
        raise NoResults("no finished job with a training history (sidecar 'history'): run `bench run` first")
    return pd.DataFrame(rows)


def is_flat(losses: np.ndarray, tolerance: float = FLAT_TOLERANCE) -> bool:
    """True when a loss curve never moved: its range is below ``tolerance`` x its first value (or one epoch)."""
    losses = np.asarray(losses, dtype=float)
    if len(losses) < 2:
        return False
    return float(np.ptp(losses)) <= tolerance * max(abs(float(losses[0])), 1e-12)


def _panels(hist: pd.DataFrame) -> list[tuple[str, str]]:
    protocols = sorted(hist["protocol"].unique())
    return [
        (d, p)
        for d in ordered_datasets(hist["dataset"].unique())
        for p in protocols
        if ((hist["dataset"] == d) & (hist["protocol"] == p)).any()
    ]


def curves_figure(hist: pd.DataFrame) -> Figure:
    """The learning-curve figure of ``history_table`` rows (see the module docstring).

    Each chosen-epoch marker is a line artist with ``gid = "chosen:<job_key>"`` (one per job), each
    mean selection curve ``gid = "select:<dataset>:<protocol>:<arch>"``."""
    panels = _panels(hist)
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    from matplotlib.figure import Figure  # only where a figure is drawn

    fig = Figure(figsize=(5.2 * ncols, 3.8 * nrows), layout="constrained")
    colors = {a: f"C{i % 10}" for i, a in enumerate(ordered_archs(hist["arch"].unique()))}
    for i, (dataset, protocol) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        part = hist[(hist["dataset"] == dataset) & (hist["protocol"] == protocol)]
        for arch in ordered_archs(part["arch"].unique()):
            _draw_arch(ax, part[part["arch"] == arch], f"{dataset}:{protocol}:{arch}", colors[arch])
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (BCE with logits)")
        n_jobs = part["job_key"].nunique()
        title = f"{dataset_label(dataset)}, {protocol}: {n_jobs} fold model(s)"
        ax.set_title(title + (" [SYNTHETIC DATA]" if (part["source"] == "synthetic").any() else ""), fontsize=8)
        ax.legend(fontsize=6, loc="upper right")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(
        "Learning curves: selection loss (solid, band = fold spread) and training loss (dashed); "
        "markers: the epoch each fold model kept",
        fontsize=9,
        wrap=True,
    )
    return fig


def _draw_arch(ax: Any, rows: pd.DataFrame, gid: str, color: str) -> None:
    sel = rows.pivot_table(index="epoch", columns="job_key", values="select_loss")
    train = rows.pivot_table(index="epoch", columns="job_key", values="train_loss")
    epochs = sel.index.to_numpy()
    jobs = rows.drop_duplicates("job_key")
    flat = sum(is_flat(sel[k].dropna().to_numpy()) for k in sel.columns)
    bad = int(jobs["did_not_learn"].fillna(False).astype(bool).sum())
    notes = ([f"flat {flat}/{len(jobs)}"] if flat else []) + ([f"did not learn {bad}/{len(jobs)}"] if bad else [])
    label = arch_label(rows["arch"].iloc[0]) + (f" ({', '.join(notes)})" if notes else "")
    ax.plot(epochs, sel.mean(axis=1), color=color, lw=1.5, label=label, gid=f"select:{gid}")
    if sel.shape[1] > 1:
        ax.fill_between(epochs, sel.min(axis=1), sel.max(axis=1), color=color, alpha=0.2, lw=0)
    ax.plot(train.index.to_numpy(), train.mean(axis=1), color=color, lw=1, ls="--")
    for job in jobs.itertuples():
        chosen = rows[(rows["job_key"] == job.job_key) & (rows["epoch"] == job.best_epoch)]["select_loss"]
        if chosen.empty:
            raise InvalidInput(f"job {job.job_key}: best_epoch {job.best_epoch} is not in its history")
        ax.plot(
            [job.best_epoch],
            [float(chosen.iloc[0])],
            marker="o",
            ms=5,
            mfc="white",
            mec=color,
            ls="none",
            gid=f"chosen:{job.job_key}",
        )


def learning_curves(sidecars: Sequence[Mapping[str, Any]], out_dir: Path | str) -> list[Path]:
    """Save ``learning_curves.png/.pdf`` under ``out_dir`` from the jobs' sidecars; returns the paths."""
    from bench.report.figures import _save

    return _save(curves_figure(history_table(sidecars)), Path(out_dir), "learning_curves")
