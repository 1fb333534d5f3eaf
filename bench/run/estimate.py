"""What a planned sweep will cost before it runs: training time and peak memory per worker.

The estimate is measured, not modelled: for each distinct (architecture, input channels, step settings)
of the plan, a short timed step (``measure_step``: one warm-up, then a few timed training steps of
forward, BCE, backward and optimiser step and one no-grad evaluation batch, at the job's image size,
batch size, width, depth, precision, autocast and memory format) runs in a fresh process forked from
the worker pool's fork server, so its peak resident memory is what one worker's is. On CUDA the peak
is ``torch.cuda.max_memory_allocated``. Each measurement is cached per machine in
``<results>/estimates/<host>.json`` under a key of every setting it depends on plus the torch version,
the device setting and the processor, so a changed torch, device or setting is measured again.

A job's time is then ``epochs x (training batches x train step + selection batches x eval step) +
scored batches x eval step + scored images x scoring + once per job`` (building the network, counting
its MACs, serialising its checkpoint: timed in the same process): the number of batches comes from the
job's split file (the plan wrote it). The sweep's time on ``n`` workers is the local engine's schedule
(each job to the first free worker, in plan order); the fork server the workers come from is started
while the driver plans (``bench.run.workers.start_server``), so its start is not counted. A job records its own estimate and the measured training time next to it
(``estimate_record`` in ``bench.run.execute``), and ``bench report --table compute`` shows the error.

Conventions: seconds and MiB (2**20 bytes); ``peak_mb`` is one worker process's peak resident set size
on CPU (torch's shared libraries included, as a job's ``peak_memory_mb`` is).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from bench.atomic import atomic_write_json
from bench.config import Job, TrainConfig
from bench.results.provenance import cpu_model

#: Timed training steps after the warm-up; one only when the warm-up took over ``SLOW_STEP_S`` seconds
#: (a paper-scale step on a CPU takes seconds, and its time varies little from step to step).
TIMED_STEPS, SLOW_STEP_S = 5, 1.0
#: An estimate above this many seconds is said to be over a day.
DAY_S = 86_400.0
#: Input channels of the timed step (more where a dataset has more): only the first convolution changes
#: with them, so one step per network serves the 1- and 3-channel datasets alike (an upper bound for 1).
STEP_CHANNELS = 3
#: Share of the available memory the default worker count may plan to use (the rest is the margin).
MEMORY_SHARE = 0.8
#: Settings of ``TrainConfig`` that change the time or memory of one step.
STEP_SETTINGS = (
    "image_size",
    "width",
    "depth",
    "batch_size",
    "init",
    "threads",
    "device",
    "precision",
    "amp",
    "channels_last",
    "compile",
    "optimizer",
)


@dataclass(frozen=True)
class StepCost:
    """One timed step: seconds per training batch and per evaluation batch, and the peak memory (MiB) of
    the measuring worker process (``memory_kind`` ``rss`` on CPU, ``cuda_allocated`` on CUDA); ``fixed_s``:
    seconds a job spends once on its network (building it, counting its MACs, serialising its checkpoint);
    ``score_s``: seconds to score one image (``bench.run.scoring``)."""

    train_s: float
    eval_s: float
    peak_mb: float
    memory_kind: str
    device: str
    device_name: str
    fixed_s: float
    score_s: float


@dataclass(frozen=True)
class JobEstimate:
    """The estimate of one job: training seconds (``fit``), seconds in all (training and prediction) and
    the peak memory of its worker (MiB), on ``device``."""

    job: Job
    train_s: float
    total_s: float
    peak_mb: float
    device: str


# ---------------------------------------------------------------------------------------------- the timed step


def step_settings(job: Job, channels: int) -> dict[str, Any]:
    """Everything one timed step of ``job`` depends on (the cache key, with ``machine()``)."""
    train = job.train.to_dict()
    return {
        "arch": job.arch,
        "arch_defaults": job.arch_defaults,
        "arch_kwargs": job.arch_kwargs,
        "in_channels": int(channels),
        **{k: train[k] for k in STEP_SETTINGS},
    }


def machine() -> dict[str, Any]:
    """What the cached step times belong to besides the settings: torch's version, the processor, the
    visible GPUs and the host."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "none"
    return {
        "torch": torch_version,
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "visible_gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "host": socket.gethostname(),
    }


#: What a cached measurement holds; a cache entry of another version is measured again.
MEASUREMENT_VERSION = 2


def _key(settings: dict[str, Any], where: dict[str, Any]) -> str:
    text = json.dumps({"settings": settings, "machine": where, "version": MEASUREMENT_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def measure_step(settings: dict[str, Any], steps: int = TIMED_STEPS) -> StepCost:
    """Time ``steps`` training steps (after one warm-up; their median) and an evaluation batch of the network and
    settings ``settings`` (``step_settings``) on random data, in this process; its peak memory is this
    process's (call it in a fresh worker: ``measure``)."""
    import torch
    from torch import nn

    from bench.analysis.compute import PeakMemory
    from bench.architectures import create_model
    from bench.run.devices import precision_for, resolve_device
    from bench.run.train import batch_loss, compiled, make_optimizer, seed_everything, train_dtype

    device = resolve_device(settings["device"])
    cfg = TrainConfig(**{k: settings[k] for k in STEP_SETTINGS if k != "device"}, device=device)
    seed_everything(0, cfg.threads, compiled=cfg.compile)
    memory = PeakMemory(device).start()
    kwargs = {"in_channels": settings["in_channels"], "classes": 1, **json.loads(settings["arch_kwargs"] or "{}")}
    if ":" not in settings["arch"]:
        kwargs.update(width=cfg.width, depth=cfg.depth, init=cfg.init)
    start = time.perf_counter()
    model = create_model(settings["arch"], **kwargs)
    fixed_s = time.perf_counter() - start
    prec = precision_for(device, cfg.amp, cfg.channels_last)
    dtype = train_dtype(cfg.precision)
    model.to(device=device, dtype=dtype, memory_format=prec.memory_format())
    net = compiled(model, cfg.compile)
    opt = make_optimizer(model.parameters(), cfg)
    criterion = nn.BCEWithLogitsLoss()
    shape = (cfg.batch_size, settings["in_channels"], cfg.image_size, cfg.image_size)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen).to(device=device, dtype=dtype, memory_format=prec.memory_format())
    y = (torch.rand((cfg.batch_size, 1, cfg.image_size, cfg.image_size), generator=gen) > 0.5).to(device, dtype)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def train_step() -> None:
        net.train()
        with prec.autocast(device):
            loss = batch_loss(net, x, y, criterion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())

    start = time.perf_counter()
    train_step()  # warm-up: kernel selection, the optimiser's state
    sync()
    if time.perf_counter() - start > SLOW_STEP_S:  # a paper-scale step on a CPU: one timed step is enough
        steps = 1
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        train_step()
        sync()
        times.append(time.perf_counter() - start)
    train_s = statistics.median(times)  # robust to another process's burst during one step
    net.eval()
    evals = 1 if steps == 1 else 2
    with torch.no_grad(), prec.autocast(device):  # as ``mean_loss`` and prediction run a batch
        float(criterion(net(x), y))
        sync()
        start = time.perf_counter()
        for _ in range(evals):
            float(criterion(net(x), y))
        sync()
    eval_s = (time.perf_counter() - start) / evals
    memory.stop()
    fixed_s += _once_per_job(model, settings["in_channels"], cfg.image_size)
    score_s = _score_seconds(cfg.batch_size, cfg.image_size)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else cpu_model()
    # the job also holds a copy of the best epoch's weights (``fit``), which the timed step does not
    best_copy = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
    peak = (memory.mb if memory.kind == "cuda_allocated" else memory.process_mb) + best_copy
    kind = "cuda_allocated" if memory.kind == "cuda_allocated" else "rss"
    return StepCost(train_s, eval_s, peak, kind, device, name, fixed_s, score_s)


def _once_per_job(model: Any, channels: int, size: int) -> float:
    """Seconds of what a job does once with its network besides training: its MAC count
    (``bench.analysis.compute.model_cost``) and its checkpoint serialised (``bench.results.checkpoint``)."""
    import io

    import torch

    from bench.analysis.compute import model_cost

    start = time.perf_counter()
    model_cost(model, channels, size)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, io.BytesIO())
    return time.perf_counter() - start


def _score_seconds(batch: int, size: int) -> float:
    """Seconds to score one image (Dice, IoU, Hausdorff: ``bench.run.scoring``) at ``size``, on a batch of
    random masks (every pixel a coin flip: a boundary as long as any prediction's)."""
    import numpy as np

    from bench.run.scoring import score_rows

    rng = np.random.default_rng(0)
    probs, masks = rng.random((batch, size, size), np.float32), rng.random((batch, size, size)) > 0.5
    start = time.perf_counter()
    score_rows(probs, masks, [str(i) for i in range(batch)], ["g"] * batch)
    return (time.perf_counter() - start) / batch


def measure(todo: Sequence[dict[str, Any]], context: BaseContext | None = None) -> list[StepCost | str]:
    """``measure_step`` of each settings dict, each in a fresh process of ``context`` (pass
    ``bench.run.workers.pool_context()``: the fork server the pool's workers are forked from, which has
    imported what a job imports; default: a fresh interpreter each), one after the other, so each peak is
    what one worker's is. (Never forked from this process: planning ran OpenCV's thread pool here, and a
    child forked from it can hang in its first OpenCV call.) A step that fails (or kills its process) gives a
    one-line reason instead of a ``StepCost``."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = context if context is not None else multiprocessing.get_context("spawn")
    out: list[StepCost | str] = []
    for settings in todo:
        try:
            with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                out.append(pool.submit(measure_step, settings).result())
        except Exception as exc:  # noqa: BLE001 (a network that cannot take a step: its jobs say why; the plan goes on)
            out.append(f"{settings['arch']}: {type(exc).__name__}: {exc}".splitlines()[0])
    return out


def cache_path(results: Path) -> Path:
    """The step-time cache of this machine under ``results``."""
    return Path(results) / "estimates" / f"{socket.gethostname()}.json"


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def step_costs(
    jobs: Iterable[Job],
    results: Path,
    *,
    measure_missing: bool = True,
    on_measure: Any = None,
    failures: list[str] | None = None,
    context: BaseContext | None = None,
) -> dict[str, StepCost]:
    """The ``StepCost`` of every job (by job key): read from this machine's cache, the missing ones
    measured (``measure``) and cached, unless ``measure_missing`` is False (then they are left out, as
    are those whose step failed: their reasons are appended to ``failures``). ``on_measure(n)`` is called
    before ``n`` measurements start; ``context``: see ``measure``."""
    failures = [] if failures is None else failures
    from bench.datasets import dataset_info

    jobs = list(jobs)
    where = machine()
    path = cache_path(results)
    cache = _read_cache(path)
    keys, settings_of = {}, {}
    for job in jobs:
        settings = step_settings(job, max(STEP_CHANNELS, dataset_info(job.dataset).channels))
        key = _key(settings, where)
        keys[job.key], settings_of[key] = key, settings
    missing = [k for k in settings_of if k not in cache]
    if missing and measure_missing:
        if on_measure is not None:
            on_measure(len(missing))
        measured = {}
        for key, cost in zip(missing, measure([settings_of[k] for k in missing], context)):
            if isinstance(cost, str):
                failures.append(cost)
                continue
            measured[key] = {**cost.__dict__, "settings": settings_of[key], "machine": where, "measured": time.time()}
        if measured:
            cache.update(measured)
            atomic_write_json(path, {**_read_cache(path), **measured})  # another process may have added entries
    fields = StepCost.__dataclass_fields__
    return {jk: StepCost(**{f: cache[k][f] for f in fields}) for jk, k in keys.items() if k in cache}


# ---------------------------------------------------------------------------------------------- jobs and sweeps


def batches(job: Job) -> dict[str, int]:
    """Training, selection and scored batches of one job (per epoch for the first two), from its split file."""
    from bench.datasets.splits import Split

    ids = Split.load(Path(job.split_path)).fold_ids(job.fold)
    per = job.train.batch_size
    scored = len(ids["val"]) + len(ids["test"])
    return {
        "train": math.ceil(len(ids["train"]) / per),
        "select": math.ceil(len(ids["select"]) / per),
        "scored": math.ceil(scored / per),
        "scored_images": scored,
    }


def job_estimate(job: Job, cost: StepCost, counts: dict[str, int] | None = None) -> JobEstimate:
    """The estimate of ``job`` from its step's ``cost`` (and its batch counts, read when not given)."""
    n = counts if counts is not None else batches(job)
    train = job.train.epochs * (n["train"] * cost.train_s + n["select"] * cost.eval_s)
    after = n["scored"] * cost.eval_s + n["scored_images"] * cost.score_s + cost.fixed_s
    return JobEstimate(job, train, train + after, cost.peak_mb, cost.device)


def sweep_seconds(estimates: Sequence[JobEstimate], workers: int) -> float:
    """Wall seconds of ``estimates`` on ``workers`` local workers: each job, in order, to the first free one."""
    free = [0.0] * max(1, min(workers, len(estimates) or 1))
    for e in estimates:
        i = free.index(min(free))
        free[i] += e.total_s
    return max(free) if estimates else 0.0


def available_mb() -> float | None:
    """The memory available to new processes (``MemAvailable``, Linux), MiB; None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def workers_that_fit(peak_mb: float, cores: int, available: float | None) -> int:
    """The most workers (1..``cores``) whose estimated peaks together fit in ``MEMORY_SHARE`` of
    ``available`` MiB (all of ``cores`` when the available memory is unknown)."""
    if available is None or not math.isfinite(peak_mb) or peak_mb <= 0:
        return max(1, cores)
    return max(1, min(cores, int(MEMORY_SHARE * available // peak_mb)))


def duration(seconds: float) -> str:
    """``seconds`` as the largest fitting units: "45 s", "12 min", "3.4 h", "2.1 days"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY_S:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY_S:.1f} days"


@dataclass(frozen=True)
class PlanCost:
    """The cost of a plan: one estimate per job to run; ``unestimated``: jobs whose network could not take
    a timed step, and ``failures`` the reasons (one line each)."""

    estimates: tuple[JobEstimate, ...]
    unestimated: tuple[Job, ...] = ()
    failures: tuple[str, ...] = ()

    @property
    def peak_mb(self) -> float:
        return max((e.peak_mb for e in self.estimates), default=0.0)

    def seconds(self, workers: int) -> float:
        return sweep_seconds(self.estimates, workers)

    def lines(self, workers: int, profile: str) -> list[str]:
        """The plan's cost: per architecture, in total, and the warnings (over a day, paper on a CPU)."""
        missing = [
            f"estimate: {len(self.unestimated)} job(s) not estimated, their step failed ({reason})"
            for reason in self.failures[:1]
        ]
        if not self.estimates:
            return missing or ["estimate: nothing to run"]
        by_arch: dict[str, list[JobEstimate]] = {}
        for e in self.estimates:
            by_arch.setdefault(e.job.arch, []).append(e)
        devices = sorted({e.device for e in self.estimates})
        wall = self.seconds(workers)
        head = (
            f"estimate on {', '.join(devices)} ({len(self.estimates)} jobs to run, {workers} worker(s)): "
            f"{duration(wall)} wall, peak memory per worker {self.peak_mb:,.0f} MiB (the largest network's) "
            f"(from a timed step per architecture; its error is in `bench report --table compute`)"
        )
        lines = [head]
        width = max(len(a) for a in by_arch)
        for arch, group in by_arch.items():
            lines.append(
                f"  {arch:<{width}} {len(group):>4} jobs  {duration(sum(e.total_s for e in group)):>10} summed  "
                f"peak {max(e.peak_mb for e in group):,.0f} MiB in a fresh worker"
            )
        if wall > DAY_S:
            lines.append(f"note: the estimate is over a day ({duration(wall)}) on {', '.join(devices)}")
        if profile == "paper" and devices == ["cpu"]:
            lines.append(
                "note: the paper profile is meant for a GPU (256 px, width 32, 100 epochs); on a CPU use the "
                "quick profile, or run on a machine with a GPU (--device cuda)"
            )
        return lines + missing


def plan_cost(
    jobs: Sequence[Job], results: Path, *, on_measure: Any = None, context: BaseContext | None = None
) -> PlanCost:
    """The estimate of every job of ``jobs`` (measuring the step costs this machine lacks: ``measure``)."""
    failures: list[str] = []
    costs = step_costs(jobs, results, on_measure=on_measure, failures=failures, context=context)
    counts: dict[tuple[str, int, int], dict[str, int]] = {}
    out = []
    for job in jobs:
        if job.key not in costs:
            continue
        at = (job.split_path, job.fold, job.train.batch_size)
        if at not in counts:
            counts[at] = batches(job)
        out.append(job_estimate(job, costs[job.key], counts[at]))
    unestimated = tuple(j for j in jobs if j.key not in costs)
    return PlanCost(tuple(out), unestimated, tuple(failures))


def cached_estimate(job: Job, results: Path) -> JobEstimate | None:
    """The estimate of ``job`` from this machine's cache alone (None when its step was never measured
    here): what a job records beside its measured time."""
    try:  # an estimate is never worth failing a job for: a dataset or split file this process cannot read
        cost = step_costs([job], results, measure_missing=False).get(job.key)
        return None if cost is None else job_estimate(job, cost)
    except (OSError, ValueError, KeyError):
        return None
