"""The job itself: data and split (checked against the plan), model, training, prediction and the per-image
rows, with the checkpoint and predictions written beside the rows.

``execute`` is what ``bench.run.job.run_job`` calls once it holds the job's lock; this module imports torch
and every network, so only the process that runs a job imports it (a driver that sends its jobs to worker
processes, Dask or SLURM never does).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bench.analysis.compute import PeakMemory, compute_info, model_cost
from bench.analysis.learning import COLUMN, assess
from bench.architectures import create_model
from bench.config import Job, replace
from bench.datasets.prepare import PreparedData, take_rows
from bench.datasets.splits import Split
from bench.results.checkpoint import checkpoint_meta, save_checkpoint
from bench.results.job_data import load_job_data
from bench.run.devices import bind_device, device_slot, precision_for
from bench.run.evaluate import Part, predict_and_score
from bench.run.train import fit, job_seed, seed_everything


def model_kwargs(job: Job, in_channels: int) -> dict[str, Any]:
    """The constructor arguments of the job's network (recorded in its checkpoint): the job's ``arch_kwargs``
    (e.g. tuned ``dilations``) plus what the harness sets; ``arch_kwargs`` may not set those."""
    own = set(json.loads(job.arch_kwargs)) & {
        "in_channels",
        "classes",
        *(() if ":" in job.arch else ("width", "depth", "init")),
    }
    if own:
        raise ValueError(
            f"{job.label}: arch_kwargs may not set {', '.join(sorted(own))} (the harness sets them from "
            "the data and the width/depth/init settings)"
        )
    kwargs: dict[str, Any] = {"in_channels": in_channels, "classes": 1, **json.loads(job.arch_kwargs)}
    if ":" not in job.arch:  # the project's own networks take the profile's width/depth/init
        kwargs.update(width=job.train.width, depth=job.train.depth, init=job.train.init)
    return kwargs


def build_model(job: Job, in_channels: int) -> torch.nn.Module:
    return create_model(job.arch, **model_kwargs(job, in_channels))


def fold_ids(split: Split, protocol: str, fold: int) -> dict[str, list[str]]:
    """Train / selection / scored ids of one fold model (``Split.fold_ids``).

    holdout: train on the 4 other folds, select the best epoch on fold k, score fold k ("val") and
    the test set ("test"). cv (standard 5-fold): train on the 4 other folds minus their inner
    validation part (the split file's ``select``, a ``inner_fraction`` share of whole groups), select
    the epoch there, score fold k out of fold.
    """
    if protocol != split.protocol:
        raise ValueError(f"a {protocol} job got a {split.protocol} split")
    return split.fold_ids(fold)


class Rows:
    """Rows of a prepared dataset gathered on demand, for ``fit`` and ``predict``: ``rows[k]`` (an index
    tensor/array or a slice over the view's own positions) returns a float32 tensor of just those rows,
    so a job never holds a whole split. ``kind`` ``images``: N x C x S x S normalised to [0, 1];
    ``masks``: N x 1 x S x S in {0, 1}. Values are exactly those of the old whole-split copy."""

    def __init__(self, data: PreparedData, rows: np.ndarray, kind: str) -> None:
        if kind not in ("images", "masks"):
            raise ValueError(f"kind must be images or masks, got {kind!r}")
        self.data, self.rows, self.kind = data, np.asarray(rows, np.int64), kind

    @property
    def shape(self) -> tuple[int, ...]:
        size = self.data.masks.shape[1:]
        return (len(self.rows), self.data.channels if self.kind == "images" else 1, *size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, torch.Tensor):
            key = key.numpy()
        rows = self.rows[key]
        if self.kind == "images":
            return torch.from_numpy(self.data.images[rows])
        return torch.from_numpy(take_rows(self.data.masks, rows)[:, None].astype(np.float32))


def tensors(data: PreparedData, ids: list[str]) -> tuple[Rows, Rows]:
    """(images, masks) of ``ids`` as ``Rows`` views: batches are gathered by index from the
    (memory-mapped) cache when ``fit`` asks for them."""
    idx = data.index(ids)
    return Rows(data, idx, "images"), Rows(data, idx, "masks")


def make_augment(job: Job, seed: int) -> Any:
    if not job.train.augment:
        return None
    from bench.datasets.augment import augment_batch, paper_augmentation

    transform = paper_augmentation(seed)

    def augment(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xi, yi = augment_batch(x.numpy(), y[:, 0].numpy() > 0.5, transform)
        return torch.from_numpy(xi), torch.from_numpy(yi[:, None].astype(np.float32))

    return augment


def execute(job: Job, results: Path, out: dict[str, Path], progress: bool = False) -> tuple[pd.DataFrame, dict]:
    """Run ``job``; returns (per-image rows, sidecar info). Writes the checkpoint and predictions.

    On a machine with several GPUs a ``cuda``/``auto`` job holds one of them for its whole run
    (``bench.run.devices.device_slot``); the device it ran on is recorded in the sidecar."""

    with device_slot(job.train.device, Path(results) / ".devices") as device:
        return _execute_on(device, job, results, out, progress)


def _execute_on(
    device: str, job: Job, results: Path, out: dict[str, Path], progress: bool
) -> tuple[pd.DataFrame, dict]:

    bind_device(device)  # this job's GPU becomes the current one before any CUDA call (no context on GPU 0)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    memory = PeakMemory(device).start()
    seed = job_seed(job.seed, job.dataset, job.arch, job.protocol, job.fold)
    seed_everything(seed, job.train.threads, compiled=job.train.compile)
    data, split = load_job_data(job, Path(results) / "cache")
    ids = fold_ids(split, job.protocol, job.fold)
    model = build_model(job, data.channels)
    cfg = replace(job.train, device=device)
    bar = _epoch_bar(job, progress)
    result = fit(
        model,
        cfg,
        tensors(data, ids["train"]),
        tensors(data, ids["select"]),
        seed=seed,
        augment=make_augment(job, seed),
        on_epoch=bar,
    )
    save_checkpoint(out["checkpoint"], result.model, checkpoint_meta(job, data, model_kwargs(job, data.channels)))
    # every scored image (val and test: their case ids are disjoint) is stored, so each row can be re-scored;
    # predicted, scored and written batch by batch (no whole split of probabilities is held)
    parts = [
        Part(name, *tensors(data, ids[name]), ids[name], [data.groups[i] for i in data.index(ids[name])])
        for name in ("val", "test")
        if ids[name]
    ]
    prec = precision_for(device, cfg.amp, cfg.channels_last)  # training's autocast: selection and inference too
    scored, infer_s = predict_and_score(
        result.model, parts, cfg.batch_size, device, out["predictions"], autocast=lambda: prec.autocast(device)
    )
    rows = scored.assign(
        dataset=job.dataset,
        source=job.source,
        data_options=job.data_options,
        arch=job.arch,
        protocol=job.protocol,
        fold=job.fold,
        seed=job.seed,
        profile=job.profile,
        split_hash=job.split_hash,
        job_key=job.key,
        eval_resolution="input",
    )
    info = {
        "best_epoch": result.best_epoch,
        "best_select_loss": result.best_loss,
        "history": result.history,
        "train_seconds": result.seconds,
        "n_train": len(ids["train"]),
        "n_select": len(ids["select"]),
        "n_expected": len(ids["val"]) + len(ids["test"]),
        "device": device,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    learning = assess(rows, result.history)  # the "did not learn" flag, stored with the rows and the sidecar
    rows[COLUMN], info["learning"] = learning.did_not_learn, learning.to_dict()
    memory.stop()
    info["compute"] = compute_info(
        model_cost(model, data.channels, job.train.image_size),
        result.seconds,
        len(result.history),
        infer_s,
        len(ids["val"]) + len(ids["test"]),
        memory,
        device=device,
        threads=job.train.threads,
        **prec.to_dict(),
        selection_precision=prec.name,  # the selection pass and inference ran under the same autocast
        inference_precision=prec.name,
        **estimate_record(job, Path(results), result.seconds),
    )
    return rows, info


def estimate_record(job: Job, results: Path, train_seconds: float) -> dict[str, float]:
    """The plan's estimate of the job's training time (``bench.run.estimate``, from this machine's cache
    of timed steps) and its relative error against ``train_seconds`` (estimated / measured - 1); empty
    when this machine never measured the job's step (the plan was made elsewhere)."""
    from bench.run.estimate import cached_estimate

    estimate = cached_estimate(job, results)
    if estimate is None or train_seconds <= 0:
        return {}
    return {"estimated_train_seconds": estimate.train_s, "estimate_error": estimate.train_s / train_seconds - 1}


def _epoch_bar(job: Job, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=job.train.epochs, desc=job.label, leave=False, unit="epoch")

    def update(epoch: int, record: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{record['train_loss']:.4f}", sel=f"{record['select_loss']:.4f}")
        if epoch + 1 == job.train.epochs:
            bar.close()

    return update
