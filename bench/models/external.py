"""Score stored fold models again (``bench evaluate``): on an external cohort, or at native resolution.

- External cohort (``data_root`` given): every stored model of the sweep is scored on every case of
  ``<data_root>/<dataset>`` (same native layout), rows with ``split = "external"`` and the cohort's
  data fingerprint in ``cohort_fingerprint``.
- Internal cohort (no ``data_root``): each model's own ``val``/``test`` images, from the job's data.

``resolution``: ``input`` scores the network-size masks exactly as ``bench run`` does (S x S images or
patches); ``native`` scores the prediction resized to each source image's own H x W (patched datasets
reassembled first, ``bench.models.predict``) against the native mask, one row per source image, distances
in native pixels. Every row says which in ``eval_resolution``; ``eval_size`` stays the network's S.

Rows go to ``<results>/runs/<dataset>/<arch>/evaluations/<job stem>-<cohort>-<resolution>.parquet`` with
a JSON sidecar, the same atomic write and status rule as jobs; ``bench.results.store.load_all`` reads them with
the job rows. Their ``job_key`` is the model's job key (the settings that trained it); ``eval_key``
identifies the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench import __version__
from bench.datasets import open_dataset
from bench.datasets.prepare import prepare
from bench.errors import InvalidInput
from bench.metrics import image_metrics
from bench.models.predict import native_probability
from bench.results.artefacts import EVALUATION_ARTEFACTS, describe
from bench.results.checkpoint import CheckpointError, CheckpointMeta, load_model
from bench.results.job_data import load_job_data
from bench.results.store import ResultWarning, atomic_write_json, atomic_write_parquet, read_evaluation, read_sidecar
from bench.results.stored import StoredModel, stored_models
from bench.run.evaluate import predict as predict_batches
from bench.run.execute import fold_ids
from bench.run.plan import dataset_root
from bench.run.scoring import score

RESOLUTIONS = ("input", "native")
EXTERNAL = "external"


@dataclass(frozen=True)
class EvaluateRequest:
    results: Path
    dataset: str
    data_root: Path | None = None
    arch: str | None = None
    folds: tuple[int, ...] | None = None
    protocol: str | None = None
    profile: str | None = None
    resolutions: tuple[str, ...] = ("input",)
    skip: tuple[str, ...] = ()
    batch_size: int = 4
    device: str = "cpu"
    force: bool = False


def evaluate_stored(req: EvaluateRequest) -> Iterator[dict[str, Any]]:
    """Score each stored model; yields {label, status (ok | skipped), path, n_rows} per (model, resolution)."""
    bad = [r for r in req.resolutions if r not in RESOLUTIONS]
    if bad:
        raise InvalidInput(f"resolution must be input or native, got {bad}")
    if req.data_root is None and "input" in req.resolutions:
        raise InvalidInput(
            "input-resolution rows of the internal cohort are the job's own rows; give --data-root "
            "for an external cohort, or --resolution native"
        )
    for model in stored_models(
        req.results, req.dataset, req.arch, protocol=req.protocol, folds=req.folds, profile=req.profile
    ):
        for resolution in req.resolutions:
            yield _evaluate_one(req, model, resolution)


def _evaluate_one(req: EvaluateRequest, stored: StoredModel, resolution: str) -> dict[str, Any]:
    net, meta = load_model(stored.checkpoint, stored.job.arch)
    cohort = _external_cohort(req, meta) if req.data_root is not None else _internal_cohort(req, stored)
    key = _eval_key(stored.job.key, cohort["fingerprint"], resolution, cohort["kind"])
    tag = f"{cohort['kind']}-{cohort['fingerprint'][:8]}-{resolution}"
    parquet = stored.sidecar.parent / "evaluations" / f"{stored.sidecar.stem}-{tag}.parquet"
    label = f"{stored.job.label} {tag}"
    side = read_sidecar(parquet.with_suffix(".json"))
    if not req.force and side and side.get("status") == "ok" and side.get("key") == key:
        rows, problem = read_evaluation(parquet.with_suffix(".json"))  # verified: a damaged one is recomputed
        if problem is None and rows is not None:
            return {"label": label, "status": "skipped", "path": parquet, "n_rows": side.get("n_written", 0)}
        warnings.warn(f"{problem}: recomputing it", ResultWarning, stacklevel=2)
    elif parquet.with_suffix(".json").exists() and side is None and not req.force:
        warnings.warn(f"{parquet.with_suffix('.json')} is unreadable: recomputing it", ResultWarning, stacklevel=2)
    frames = [_score(net, meta, part, resolution, req).assign(split=split) for split, part in cohort["parts"]]
    rows = pd.concat(frames, ignore_index=True).assign(
        dataset=stored.job.dataset,
        source=cohort["source"],
        data_options=cohort["options"],
        arch=stored.job.arch,
        protocol=stored.job.protocol,
        fold=stored.job.fold,
        seed=stored.job.seed,
        profile=stored.job.profile,
        split_hash=stored.job.split_hash,
        job_key=stored.job.key,
        eval_resolution=resolution,
        cohort_fingerprint=cohort["fingerprint"],
        eval_key=key,
    )
    atomic_write_parquet(parquet, rows)
    atomic_write_json(
        parquet.with_suffix(".json"),
        {
            "kind": "evaluation",
            "key": key,
            "status": "ok",
            "model_key": stored.job.key,
            "job": stored.job.to_dict(),
            "checkpoint": str(stored.checkpoint),
            "cohort": {k: v for k, v in cohort.items() if k != "parts"},
            "eval_resolution": resolution,
            "n_written": len(rows),
            "artefacts": describe(parquet.with_suffix(".json"), EVALUATION_ARTEFACTS),
        },
    )
    return {"label": label, "status": "ok", "path": parquet, "n_rows": len(rows)}


def _eval_key(model_key: str, fingerprint: str, resolution: str, kind: str) -> str:

    payload = {
        "model": model_key,
        "cohort": fingerprint,
        "resolution": resolution,
        "kind": kind,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ cohorts


@dataclass(frozen=True)
class Part:
    """Images to score: a prepared dataset (rows ``idx``) at input size, or native ``cases`` of ``ds``."""

    ds: Any
    cases: tuple[Any, ...]
    data: Any = None
    idx: np.ndarray | None = None


def _cohort_options(job_options: str, skip: tuple[str, ...]) -> dict[str, Any]:
    """The training job's dataset options that apply to another folder of real data (not its --skip list,
    nor the synthetic generator's size/n), plus this cohort's own ``skip``."""
    opts = {k: v for k, v in json.loads(job_options).items() if k not in ("skip", "size", "n")}
    if skip:
        opts["skip"] = sorted(skip)
    return opts


def _external_cohort(req: EvaluateRequest, meta: CheckpointMeta) -> dict[str, Any]:

    root = dataset_root(req.data_root, req.dataset)
    options = _cohort_options(meta.data_options, req.skip)
    ds = open_dataset(req.dataset, root, **options)
    prep = meta.preprocessing
    data = prepare(
        ds,
        prep.image_size,
        patch_size=prep.patch_size,
        patch_padding=prep.patch_padding or 0,
        cache_dir=Path(req.results) / "cache",
    )
    _same_preprocessing(data.options, meta, root)
    part = Part(ds, tuple(ds.cases()), data, np.arange(len(data)))
    return {
        "kind": EXTERNAL,
        "source": ds.source,
        "root": str(root),
        "fingerprint": data.fingerprint,
        "options": json.dumps(options, sort_keys=True),
        "parts": [(EXTERNAL, part)],
    }


def _same_preprocessing(options: dict[str, Any], meta: CheckpointMeta, root: Path) -> None:
    prep = meta.preprocessing
    got = (options["size"], options["patch_size"], options["patch_padding"], options["normalization"])
    want = (prep.image_size, prep.patch_size, prep.patch_padding, prep.normalization)
    if got != want:
        raise CheckpointError(
            f"{root}: prepared as (size, patch, padding, normalisation) {got}, but the model was trained on {want}"
        )


def _internal_cohort(req: EvaluateRequest, stored: StoredModel) -> dict[str, Any]:
    """The job's own val/test images (source images of its patches for patched datasets)."""

    job = stored.job
    data, split = load_job_data(job, Path(req.results) / "cache")
    ids = fold_ids(split, job.protocol, job.fold)
    root = None if job.data_root is None else Path(job.data_root)
    ds = open_dataset(job.dataset, root, **json.loads(job.data_options))
    by_id = {c.case_id: c for c in ds.cases()}
    parts = []
    for name in ("val", "test"):
        if ids[name]:
            sources = dict.fromkeys(data.source_ids[i] for i in data.index(ids[name]))
            parts.append((name, Part(ds, tuple(by_id[s] for s in sources))))
    return {
        "kind": "internal",
        "source": job.source,
        "root": job.data_root,
        "fingerprint": job.data_fingerprint,
        "options": job.data_options,
        "parts": parts,
    }


# ------------------------------------------------------------------------------------------ scoring


def _score(
    net: torch.nn.Module, meta: CheckpointMeta, part: Part, resolution: str, req: EvaluateRequest
) -> pd.DataFrame:
    if resolution == "input":
        data, idx = part.data, part.idx
        probs = predict_batches(net, torch.from_numpy(data.images[idx]), req.batch_size, req.device)
        return score(probs, data.masks[idx], [data.case_ids[i] for i in idx], [data.groups[i] for i in idx])
    return score_native(net, meta, part.ds, part.cases, req.batch_size, req.device)


def score_native(
    net: torch.nn.Module,
    meta: CheckpointMeta,
    ds: Any,
    cases: tuple[Any, ...],
    batch_size: int = 4,
    device: str = "cpu",
) -> pd.DataFrame:
    """One row per case: the prediction at the image's native H x W against its native mask.

    ``eval_size`` is the network's input side; ``height``/``width`` the native size the metrics used
    (distances in native pixels)."""
    rows = []
    for case in cases:
        image, mask = ds.read(case)
        prob = native_probability([net], image, meta.preprocessing, batch_size, device)
        rows.append(
            {
                "case_id": case.case_id,
                "group": case.group,
                "eval_size": meta.preprocessing.image_size,
                "height": int(mask.shape[0]),
                "width": int(mask.shape[1]),
                **image_metrics(mask.astype(bool), prob > meta.threshold),
            }
        )
    return pd.DataFrame(rows)


def external_drop(df: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "iou", "hd")) -> pd.DataFrame:
    """Per (dataset, arch): the holdout test-set mean, the external-cohort mean (each over fold models of
    each fold model's mean over its images, as Table 5) and ``<metric>_drop`` = internal - external
    (positive: worse outside for Dice/IoU; negative: worse outside for HD). Beside each drop, each cohort's
    better trivial floor (``<metric>_floor_internal``, ``<metric>_floor_external``): a cohort with more
    empty masks has a higher Dice floor, so a model that learned nothing can look as if it improved.
    ``note`` marks a model flagged "did not learn" on either cohort (the external flag against the cohort's
    own floors): its drop says nothing about generalisation. Reports' resolution rule applies (input rows
    unless only native rows are given)."""
    from bench.analysis.tables import model_summary

    cols = [f"{m}_mean" for m in metrics]
    internal = model_summary(df, protocol="holdout", split="test", archs=None, datasets=None, metrics=metrics)
    external = model_summary(df, protocol="holdout", split=EXTERNAL, archs=None, datasets=None, metrics=metrics)
    merged = internal[["dataset", "arch", "n_models", *cols, "note"]].merge(
        external[["dataset", "arch", "n_models", *cols, "note"]],
        on=["dataset", "arch"],
        suffixes=("_internal", "_external"),
    )
    merged = merged[merged["n_models_external"] > 0].reset_index(drop=True)
    floors = {split: _better_floors(df, split, metrics) for split in ("test", EXTERNAL)}
    for m in metrics:
        merged[f"{m}_drop"] = merged[f"{m}_mean_internal"] - merged[f"{m}_mean_external"]
        for split, suffix in (("test", "internal"), (EXTERNAL, "external")):
            merged[f"{m}_floor_{suffix}"] = merged["dataset"].map(lambda d, s=split, m=m: floors[s].get((d, m), np.nan))
    merged["note"] = [_drop_note(i, e) for i, e in zip(merged.pop("note_internal"), merged.pop("note_external"))]
    order = ["dataset", "arch", "n_models_internal", "n_models_external"]
    for m in metrics:
        order += [f"{m}_mean_internal", f"{m}_floor_internal", f"{m}_mean_external", f"{m}_floor_external", f"{m}_drop"]
    merged = merged[[*order, "note"]]
    merged.attrs["caption"] = (
        "Internal (holdout test set) vs external cohort, same fold models: mean over fold "
        "models of each fold model's mean; drop = internal - external. floor = the better trivial prediction "
        "(all foreground or all background) on that cohort's images: compare each mean with its own cohort's "
        "floor before reading the drop. A drop of a model that did not learn is marked in the note."
    )
    return merged


def _better_floors(df: pd.DataFrame, split: str, metrics: tuple[str, ...]) -> dict[tuple[str, str], float]:
    """(dataset, metric) -> the better trivial floor's mean on the ``split`` images."""
    from bench.analysis.tables import floor_rows
    from bench.metrics import higher_is_better

    rows = df[(df["protocol"] == "holdout") & (df["split"] == split)] if len(df) else df
    if rows.empty:
        return {}
    table = floor_rows(rows, protocol="holdout", split=split, metrics=metrics)
    out = {}
    for ds, g in table.groupby("dataset"):
        for m in metrics:
            vals = g[f"{m}_mean"].dropna()
            if len(vals):
                out[(str(ds), m)] = float(vals.max() if higher_is_better(m) else vals.min())
    return out


def _drop_note(internal: str, external: str) -> str:
    parts = [f"internal: {internal}" if "did not learn" in str(internal) else ""]
    parts.append(f"external: {external}" if "did not learn" in str(external) else "")
    flagged = "; ".join(p for p in parts if p)
    return f"{flagged}: the drop says nothing about generalisation" if flagged else ""
