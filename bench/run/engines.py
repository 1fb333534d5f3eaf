"""Where jobs run: worker processes on this machine, a Dask cluster, or SLURM through submitit.

The engine only decides where ``bench.run.execute.run_job(job, results)`` is called. Every job writes its
own Parquet file and sidecar into the (shared) results folder and hands back its small ``JobRecord``, so
the driver never holds results, and a rerun resumes from the files whatever engine wrote them.

- ``local`` (default): ``bench.run.runner``'s own worker pool on this machine.
- ``dask``: joblib's Dask backend on a ``distributed.Client``, connected to ``--scheduler
  tcp://host:port`` or to a ``LocalCluster`` started here (one single-threaded worker per job slot).
  The driver must stay alive for the whole sweep.
- ``submitit``: one SLURM job array (``bench.run.slurm``); with ``wait=False`` the driver exits after
  submitting, and a later ``bench run`` or ``bench status`` collects from the result files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import InvalidInput
from bench.results.record import JobRecord, Status
from bench.run import slurm
from bench.run.slurm import SlurmOptions

ENGINES = ("local", "dask", "submitit")

#: Environment of Dask worker processes started here. It replaces the nanny's default, which also
#: sets MALLOC_TRIM_THRESHOLD_=65536: with torch that returns freed tensor memory to the OS on every
#: step and measured twice the CPU time per job.
DASK_WORKER_ENV = {
    "OMP_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
    "NO_ALBUMENTATIONS_UPDATE": "1",
}


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """``n_jobs``: parallel jobs for the local engine and for a LocalCluster; ``scheduler``: a Dask address."""

    name: str = "local"
    n_jobs: int = 1
    scheduler: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise InvalidInput(f"unknown engine {self.name!r}; choose one of {', '.join(ENGINES)}")
        if self.scheduler is not None and self.name != "dask":
            raise InvalidInput(f"--scheduler is an address for --engine dask, not for --engine {self.name}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise InvalidInput(f"--scheduler expects an address like tcp://host:8786, got {self.scheduler!r}")
        if self.n_jobs < 1:
            raise InvalidInput(f"n_jobs must be >= 1, got {self.n_jobs}")


def dispatch(todo: list[Job], results: Path, engine: EngineConfig) -> Iterator[JobRecord]:
    """Run ``todo`` on a cluster engine, yielding one ``JobRecord`` per job as it ends (or is submitted)."""
    results = Path(results).resolve()  # workers elsewhere may have another working directory
    if engine.name == "dask":
        yield from run_dask(todo, results, engine)
    elif engine.name == "submitit":
        yield from run_slurm(todo, results, engine.slurm)
    else:
        raise ValueError(
            f"dispatch() runs dask and submitit; the local engine runs in bench.run.runner (got {engine.name!r})"
        )


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler``, or on a LocalCluster of ``n_workers`` processes of
    one thread each, closed (and the cluster stopped) on exit."""
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(Client(scheduler, timeout="30s"))
        else:
            # replace the whole dict (not merge): drops the nanny's MALLOC_TRIM_THRESHOLD_ default
            stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": DASK_WORKER_ENV}))
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
                )
            )
            client = stack.enter_context(Client(cluster))
        yield client


def run_dask(todo: list[Job], results: Path, engine: EngineConfig) -> Iterator[JobRecord]:
    """Run ``todo`` through joblib's Dask backend; each task is one ``run_job`` call."""
    from joblib import Parallel, delayed, parallel_config

    from bench.run.execute import run_job

    with dask_client(engine.scheduler, engine.n_jobs), parallel_config(backend="dask"):
        yield from Parallel(n_jobs=-1, return_as="generator_unordered")(delayed(run_job)(job, results) for job in todo)


def run_slurm(todo: list[Job], results: Path, opts: SlurmOptions) -> Iterator[JobRecord]:
    """Submit the jobs not already waiting or running in SLURM as one array; then (``opts.wait``)
    follow every one of them to its end through the result files, else report them as submitted."""

    slurm.require_slurm()
    queue = slurm.queue_states() or {}
    subs = slurm.submissions(results)
    in_queue = [j for j in todo if j.key in subs and subs[j.key][0] in queue]
    fresh = [j for j in todo if j not in in_queue]
    tasks = slurm.submit(fresh, results, opts) if fresh else {}
    if not opts.wait:
        for job in todo:
            task = tasks.get(job.key) or subs[job.key][0]
            yield JobRecord.of(job, Status.SUBMITTED, task=task)
        return
    yield from slurm.wait_for(todo, results, opts.poll_s)
