"""A realistic fixture of the tidy per-image results table (schema: results/README.md), built from counts.

Every row is derived the way the runner derives it: pixel counts first (``tp, fp, fn, tn``), then
Dice/IoU with ``bench.metrics.dice_from_counts``/``iou_from_counts`` (both empty -> 1, reference empty
and prediction not -> 0), HD/HD95 plausible numbers with the worst-case diagonal when exactly one
mask is empty. Images share a per-image difficulty across archs, so paired tests see correlated
pairs, as real benchmark results do. Both protocols: ``holdout`` (30% test scored by 5 fold models,
each fold model also scores its validation fold) and ``cv`` (every image scored once, out of fold).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics import dice_from_counts, iou_from_counts

ARCHS = ("unet", "unetpp", "residual_unet", "resdunet", "multiresunet", "mildnet", "unet_mlr", "mildnet_no_mlr")
#: Mean Dice each arch aims at (roughly the paper's ordering: MILDNet best).
QUALITY = {
    "unet": 0.74,
    "unetpp": 0.78,
    "residual_unet": 0.76,
    "resdunet": 0.77,
    "multiresunet": 0.79,
    "mildnet": 0.84,
    "unet_mlr": 0.76,
    "mildnet_no_mlr": 0.81,
}
EMPTY_FRACTION = {"lgg_mri": 0.3}  # tumour-free slices
GROUP_SIZE = {"lgg_mri": 4}  # slices per patient


def make_results(
    *,
    datasets: Sequence[str] = ("isic2018", "lgg_mri"),
    archs: Sequence[str] = ARCHS,
    protocols: Sequence[str] = ("holdout", "cv"),
    n_cases: int = 20,
    n_folds: int = 5,
    seeds: Sequence[int] = (0,),
    eval_size: int = 32,
    quality: dict[str, float] | None = None,
    noise: float = 0.04,
    source: str = "synthetic",
    rng_seed: int = 0,
) -> pd.DataFrame:
    """One row per (job, image) for every dataset x arch x protocol x fold x seed."""
    quality = {**QUALITY, **(quality or {})}
    frames = []
    for d_index, dataset in enumerate(datasets):
        cases = _cases(dataset, n_cases, eval_size, np.random.default_rng([rng_seed, d_index]))
        for protocol in protocols:
            for fold, split, ids in _assignments(cases.index, protocol, n_folds, rng_seed):
                for seed in seeds:
                    for arch in archs:
                        rng = np.random.default_rng([rng_seed, d_index, _h(arch), fold, seed, _h(protocol + split)])
                        rows = _score(cases.loc[ids], quality[arch], noise, eval_size, rng)
                        frames.append(_annotate(rows, dataset, source, arch, protocol, fold, seed, split, eval_size))
    return pd.concat(frames, ignore_index=True)


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _cases(dataset: str, n: int, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """Per image: reference foreground size and a difficulty shared by every arch."""
    ids = [f"{dataset}-{i:03d}" for i in range(n)]
    n_ref = np.rint(rng.uniform(0.08, 0.4, n) * size * size).astype(np.int64)
    n_ref[rng.random(n) < EMPTY_FRACTION.get(dataset, 0.0)] = 0
    group = [f"{dataset}-p{i // GROUP_SIZE.get(dataset, 1):03d}" for i in range(n)]
    return pd.DataFrame({"n_ref": n_ref, "group": group, "difficulty": rng.normal(0, 0.08, n)}, index=ids)


def _assignments(ids: pd.Index, protocol: str, n_folds: int, seed: int) -> list[tuple[int, str, list[str]]]:
    """(fold, split, case ids) each fold model scores under ``protocol``."""
    order = list(np.random.default_rng(seed).permutation(ids))
    if protocol == "cv":
        return [(k, "val", sorted(order[k::n_folds])) for k in range(n_folds)]
    n_test = max(1, round(0.3 * len(order)))
    test, train = sorted(order[:n_test]), order[n_test:]
    out = []
    for k in range(n_folds):
        out += [(k, "val", sorted(train[k::n_folds])), (k, "test", test)]
    return out


def _score(cases: pd.DataFrame, quality: float, noise: float, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """Counts for each image from a target Dice, then every metric from the counts."""
    n_ref = cases["n_ref"].to_numpy()
    target = np.clip(quality + cases["difficulty"].to_numpy() + rng.normal(0, noise, len(cases)), 0.02, 0.99)
    n_pred = np.rint(n_ref * rng.uniform(0.8, 1.2, len(cases))).astype(np.int64)
    tp = np.minimum(np.rint(target * (n_ref + n_pred) / 2).astype(np.int64), np.minimum(n_ref, n_pred))
    empty = n_ref == 0  # tumour-free slice: a false-positive speck, more often for weaker archs
    n_pred[empty] = np.where(rng.random(empty.sum()) < 1.2 * (1 - quality), rng.integers(1, 30, empty.sum()), 0)
    tp[empty] = 0
    fp, fn = n_pred - tp, n_ref - tp
    out = pd.DataFrame(
        {
            "case_id": cases.index,
            "group": cases["group"].to_numpy(),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": size * size - tp - fp - fn,
            "n_ref": n_ref,
            "n_pred": n_pred,
        }
    )
    out["empty_ref"], out["empty_pred"] = out["n_ref"] == 0, out["n_pred"] == 0
    out["dice"] = dice_from_counts(out["tp"], out["fp"], out["fn"]).astype(float)
    out["iou"] = iou_from_counts(out["tp"], out["fp"], out["fn"]).astype(float)
    return _distances(out, size, rng)


def _distances(out: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    one_empty = out["empty_ref"] != out["empty_pred"]
    both_empty = out["empty_ref"] & out["empty_pred"]
    hd = (1 - out["dice"]) * size * 0.8 + rng.uniform(0.5, 2.0, len(out))
    hd = np.where(one_empty, math.hypot(size, size), np.where(both_empty, 0.0, hd))
    out["hd"] = hd
    out["hd95"] = np.where(one_empty | both_empty, hd, hd * rng.uniform(0.4, 0.9, len(out)))
    out["hd_worst_case"] = one_empty
    return out


def _annotate(
    rows: pd.DataFrame,
    dataset: str,
    source: str,
    arch: str,
    protocol: str,
    fold: int,
    seed: int,
    split: str,
    eval_size: int,
) -> pd.DataFrame:
    key = hashlib.sha256(f"{dataset}/{source}/{arch}/{protocol}/{fold}/{seed}".encode()).hexdigest()[:16]
    meta = {
        "dataset": dataset,
        "source": source,
        "data_options": "{}",
        "arch": arch,
        "protocol": protocol,
        "fold": fold,
        "seed": seed,
        "profile": "quick",
        "split": split,
        "eval_size": eval_size,
        "split_hash": f"split-{dataset}-{protocol}",
        "job_key": key,
    }
    rows = rows.assign(**meta)
    for col in ("tp", "fp", "fn", "tn", "n_ref", "n_pred"):
        rows[col] = rows[col].astype("int64")
    return rows


def make_failures(rows: Sequence[tuple[str, str, str, int, str]] = ()) -> pd.DataFrame:
    """Failed jobs as ``bench.results.store.failures`` returns them: (dataset, arch, protocol, fold, error) tuples."""
    records = [
        {"dataset": d, "arch": a, "protocol": p, "fold": f, "seed": 0, "error": e, "key": f"k{i}"}
        for i, (d, a, p, f, e) in enumerate(rows)
    ]
    return pd.DataFrame(records, columns=["dataset", "arch", "protocol", "fold", "seed", "error", "key"])


def make_sidecars(df: pd.DataFrame, **train: Any) -> list[dict[str, Any]]:
    """One ``status: ok`` sidecar per job of ``df`` (shape of ``bench.run.runner``'s sidecar)."""
    from bench.config import TrainConfig

    cfg = {**TrainConfig().to_dict(), **train}
    jobs = df.drop_duplicates("job_key")
    return [
        {
            "job": {
                "dataset": r.dataset,
                "arch": r.arch,
                "protocol": r.protocol,
                "fold": int(r.fold),
                "seed": int(r.seed),
                "profile": r.profile,
                "train": cfg,
                "source": r.source,
                "key": r.job_key,
                "arch_kwargs": "{}",
            },
            "key": r.job_key,
            "status": "ok",
            "seconds": 1.0,
            "environment": {"versions": {"bench": "0.1.0", "torch": "2.x", "numpy": np.__version__}},
        }
        for r in jobs.itertuples()
    ]


def make_rows(
    records: Sequence[dict[str, Any]],
    *,
    dataset: str = "isic2018",
    protocol: str = "holdout",
    split: str = "test",
    eval_size: int = 4,
    source: str = "synthetic",
) -> pd.DataFrame:
    """Hand-built rows: each record gives arch, case_id, tp, fp, fn, tn (and optionally fold, seed, hd, hd95);
    flags, n_ref/n_pred and dice/iou are derived with the project's rules."""
    rows = pd.DataFrame([{"fold": 0, "seed": 0, **r} for r in records])
    rows["n_ref"], rows["n_pred"] = rows["tp"] + rows["fn"], rows["tp"] + rows["fp"]
    rows["empty_ref"], rows["empty_pred"] = rows["n_ref"] == 0, rows["n_pred"] == 0
    rows["dice"] = dice_from_counts(rows["tp"], rows["fp"], rows["fn"]).astype(float)
    rows["iou"] = iou_from_counts(rows["tp"], rows["fp"], rows["fn"]).astype(float)
    for col in ("hd", "hd95"):
        if col not in rows:
            rows[col] = 1.0
    rows["hd_worst_case"] = rows["empty_ref"] != rows["empty_pred"]
    meta = {
        "dataset": dataset,
        "source": source,
        "protocol": protocol,
        "split": split,
        "eval_size": eval_size,
        "profile": "quick",
        "group": rows["case_id"],
        "split_hash": "h",
        "data_options": "{}",
    }
    rows = rows.assign(**meta)
    rows["job_key"] = rows["arch"] + "-" + rows["fold"].astype(str) + "-" + rows["seed"].astype(str)
    return rows


def every_comparison(full: pd.DataFrame) -> dict[str, Any]:
    """Each table, test and figure that compares architectures, as a thunk on the rows ``full``
    (LGG with settings attached): the like-for-like tests call every one."""
    from bench.analysis import ranking, stats, tables
    from bench.report import figures, report

    return {
        "table 5": lambda: tables.table5(full),
        "table 4": lambda: tables.table4(full),
        "tests table": lambda: report.build_table(full, "tests"),
        "ttest": lambda: stats.paired_test(full, dataset="mri"),
        "fold-level": lambda: stats.fold_level_test(full, dataset="mri"),
        "fig 8": lambda: figures.fig8_figure(full),
        "bars": lambda: figures.bar_figure(full),
        "ranking": lambda: figures.mean_ranks(full),
        "rank bootstrap": lambda: ranking.rank_table(full, n_boot=10),
        "sensitivity": lambda: tables.sensitivity(full),
    }
