"""Run one job: a ``Job`` in, a ``JobRecord`` (``bench.results.record``) out.

``run_job`` is the unit of work a local worker process, a Dask worker or a SLURM task executes. It claims
the job with a file lock (``bench.results.store.job_lock``), so any number of processes, on one machine or
on a shared filesystem, can work through the same results folder: a job another process holds is
not started twice, a finished job is never recomputed (unless forced), and a late failure never
replaces an ``ok`` result. It writes the job's Parquet rows and sidecar atomically and returns the
job's record, never a DataFrame, so one failing job never loses another's results. The only broad
``except`` of the project is here, at the per-job boundary: it records the error with its traceback.

``execute`` is the job itself: data and split (checked against the plan), model, training,
prediction and the per-image rows, with the checkpoint and predictions written beside the rows.
"""

from __future__ import annotations

import json
import os
import socket
import time
import traceback
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
from bench.errors import FATAL_ERRNOS, environment_error
from bench.results.artefacts import describe as describe_artefacts
from bench.results.checkpoint import checkpoint_meta, save_checkpoint
from bench.results.job_data import load_job_data
from bench.results.provenance import environment
from bench.results.record import JobRecord, Status
from bench.results.store import (
    atomic_write_parquet,
    check_done,
    clean_job_temporaries,
    confine,
    is_done,
    job_dir,
    job_lock,
    read_record,
    verify_result,
    write_record,
)
from bench.run.devices import bind_device, device_slot, precision_for
from bench.run.devices import resolve_device as resolve
from bench.run.evaluate import Part, predict_and_score
from bench.run.train import fit, job_seed, seed_everything
from bench.run.where import where_running


def paths(job: Job, results: Path) -> dict[str, Path]:
    """The job's files (Parquet, sidecar, checkpoint, predictions, lock), all inside ``results``."""
    folder = job_dir(results, job.dataset, job.arch)
    base = confine(results, folder / job.stem)
    if base.parent != folder:
        raise ValueError(f"job stem {job.stem!r} cannot name a file in {folder}")
    return {
        k: base.with_suffix(s)
        for k, s in (
            ("parquet", ".parquet"),
            ("sidecar", ".json"),
            ("checkpoint", ".pt"),
            ("predictions", ".pred.npz"),
            ("lock", ".lock"),
        )
    }


def is_finished(job: Job, results: Path) -> bool:
    """The job's ``ok`` result is stored and verifies (``bench.results.store.is_done``)."""
    return is_done(paths(job, results)["sidecar"], job.key)


def run_job(
    job: Job, results: Path | str, progress: bool = False, *, force: bool = False, wait: bool = True, track: Any = None
) -> JobRecord:
    """Claim, run and record one job; returns its record.

    Status ``ok`` or ``failed`` (the record written to the sidecar; a failed recomputation of an ``ok``
    result keeps the stored result and says so in ``error``), ``skipped`` (already finished, perhaps by
    another process: never recomputed unless ``force``) or ``busy`` (another process holds the job and
    ``wait`` is False). With ``wait``, a held job is waited for: if its holder finished or failed it,
    that outcome is returned; if the holder died, the job runs here. Safe from any process on a shared
    filesystem. ``track``: a ``bench.tracking.target.Tracking`` the job is logged to when it ends.
    """
    from filelock import Timeout

    results = Path(results)
    p = paths(job, results)
    lock = job_lock(p["sidecar"])
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    waited, before = False, None  # whether another process held the job; its sidecar meanwhile
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            return JobRecord.of(job, Status.BUSY)
        waited, before = True, read_record(p["sidecar"])
        lock.acquire()
    try:
        if not force and is_finished(job, results):
            return JobRecord.of(job, Status.SKIPPED, note="finished by another process" if waited else "")
        now = read_record(p["sidecar"])
        if waited and now is not None and now != before and now.status is Status.FAILED and now.key == job.key:
            return now.replace(error=f"{now.error} (recorded by another process)")
        clean_job_temporaries(p["sidecar"].parent, job.stem)
        record = _run_claimed(job, results, p, progress)
    finally:
        lock.release()
    if track is not None:  # `bench run --track`: logged by the process that ran the job (bench.tracking)
        from bench.tracking.export import track_job

        track_job(record, results, track)
    return record


def _run_claimed(job: Job, results: Path, p: dict[str, Path], progress: bool) -> JobRecord:
    """Run ``job`` while holding its lock; a failure never replaces a verified ``ok`` result."""
    start = time.perf_counter()
    previous = read_record(p["sidecar"]) if check_done(p["sidecar"], job.key)[0] else None
    started = time.time()
    died = prior_deaths(read_record(p["sidecar"]), job.key)  # earlier tries whose worker died (we hold the lock)
    tries = {"where": where_running(), "attempts": len(died) + 1, "died": died or None}
    write_record(
        p["sidecar"],
        JobRecord.of(job, Status.RUNNING, started=started, pid=os.getpid(), host=socket.gethostname(), **tries),
    )
    try:
        rows, info = execute(job, results, p, progress=progress)
        atomic_write_parquet(p["parquet"], rows)
        record = JobRecord.of(
            job,
            Status.OK,
            seconds=time.perf_counter() - start,
            n_written=len(rows),
            started=started,
            environment=environment(),
            details=info,
            artefacts=describe_artefacts(p["sidecar"]),  # size and sha256 of the rows, checkpoint, predictions
            **tries,
        )
        write_record(p["sidecar"], record)
        return record
    except Exception as exc:  # noqa: BLE001 (the per-job boundary: record the failure, never lose the sweep)
        failed = JobRecord.of(
            job,
            Status.FAILED,
            seconds=time.perf_counter() - start,
            error=environment_error(exc) or f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
            environment=environment(),
            **tries,
        )
        if previous is not None and verify_result(p["sidecar"], previous.to_json())[1] is None:
            # a recomputation (--force) failed: keep the verified result, note the failure in it
            last = {k: failed.to_json()[k] for k in ("error", "traceback", "seconds", "environment")}
            write_record(p["sidecar"], previous.replace(last_failure={**last, "at": time.time()}))
            _stop_on_full_disk(exc)
            return failed.replace(error=f"{failed.error} (the earlier ok result is kept)")
        write_record(p["sidecar"], failed)
        _stop_on_full_disk(exc)
        return failed


def prior_deaths(record: JobRecord | None, key: str) -> list[dict[str, Any]]:
    """The dead tries of job ``key`` its sidecar ``record`` shows, oldest first: the deaths it already lists,
    plus the try it describes when that try's process died (a ``running`` record whose lock is now free,
    which the caller holds, or a ``failed`` record marked crashed). Empty once the job has a result."""
    if record is None or record.key != key:
        return []
    earlier = [dict(d) for d in record.died or ()]
    if record.crashed and earlier and earlier[-1].get("pid") == record.crashed_pid:
        return earlier  # a crash record that already lists its own death
    if record.status is Status.RUNNING or record.crashed:
        where = dict(record.where or {})
        earlier.append(
            {
                "pid": record.pid or record.crashed_pid or where.get("pid"),
                "host": record.host or where.get("host"),
                "started": record.started,
                **{k: where[k] for k in ("engine", "dask_worker", "slurm_task") if k in where},
            }
        )
        return earlier
    return []


def _stop_on_full_disk(exc: Exception) -> None:
    """Re-raise a full disk or read-only folder (recorded in the sidecar already): every later job
    would fail the same way, so the sweep stops with one line (``bench.errors.environment_error``)."""
    if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS and environment_error(exc):
        raise exc


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` or ``cpu``; validated (``bench.run.devices.resolve_device``)."""

    return resolve(name)


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
