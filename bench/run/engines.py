"""Where jobs run: worker processes on this machine, a Dask cluster, or SLURM through submitit.

The engine only decides where ``bench.run.job.run_job(job, results)`` is called. Every job writes its
own Parquet file and sidecar into the (shared) results folder and hands back its small ``JobRecord``, so
the driver never holds results, and a rerun resumes from the files whatever engine wrote them. Each
sidecar records where its job ran (``where``: engine, host, pid, Dask worker or SLURM task;
``bench.run.where``).

- ``local`` (default): ``bench.run.runner``'s own worker pool on this machine.
- ``dask``: one ``distributed`` task per job (``client.submit``, collected with ``as_completed``) on a
  cluster reached at ``--scheduler tcp://host:port``, or on a ``LocalCluster`` started here (one
  single-threaded worker per job slot). The driver waits up to ``--wait-workers`` seconds for the first
  worker, then only waits: the jobs run on the workers. It must stay alive for the whole sweep.
- ``submitit``: SLURM job arrays (``bench.run.slurm``), split to the cluster's limits; with
  ``wait=False`` the driver exits after submitting, and a later ``bench run`` or ``bench status``
  collects from the result files.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import InvalidInput, UserError
from bench.results.record import CRASHED, JobRecord, Status
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

#: Seconds to reach a Dask scheduler before its address is called unreachable.
CONNECT_TIMEOUT_S = 10.0


class ClusterUnavailable(UserError, RuntimeError):
    """The cluster named on the command line cannot be reached or has no worker to run the jobs."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """``n_jobs``: parallel jobs for the local engine and for a LocalCluster; ``scheduler``: a Dask address;
    ``wait_workers``: seconds the Dask driver waits for its first worker; ``dask_resources``: abstract
    resources each job needs (``(("GPU", 1.0),)``: only workers started with ``--resources GPU=1`` run
    it, one job per unit); ``dask_workers``: worker addresses or host names the jobs may run on."""

    name: str = "local"
    n_jobs: int = 1
    scheduler: str | None = None
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    wait_workers: float = 300.0
    dask_resources: tuple[tuple[str, float], ...] = ()
    dask_workers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise InvalidInput(f"unknown engine {self.name!r}; choose one of {', '.join(ENGINES)}")
        if self.scheduler is not None and self.name != "dask":
            raise InvalidInput(f"--scheduler is an address for --engine dask, not for --engine {self.name}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise InvalidInput(f"--scheduler expects an address like tcp://host:8786, got {self.scheduler!r}")
        if (self.dask_resources or self.dask_workers) and self.name != "dask":
            raise InvalidInput(f"--dask-resources/--dask-workers are for --engine dask, not --engine {self.name}")
        if self.n_jobs < 1:
            raise InvalidInput(f"n_jobs must be >= 1, got {self.n_jobs}")
        if self.wait_workers <= 0:
            raise InvalidInput(f"--wait-workers must be > 0 seconds, got {self.wait_workers}")
        for name, amount in self.dask_resources:
            if not name or amount <= 0:
                raise InvalidInput(f"--dask-resources expects NAME=AMOUNT with AMOUNT > 0, got {name}={amount}")


def parse_resources(text: str | None) -> tuple[tuple[str, float], ...]:
    """``"GPU=1,MEM=8e9"`` -> ``(("GPU", 1.0), ("MEM", 8e9))``; None or '' -> ()."""
    out = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = float("nan")
        if not sep or not name.strip() or not value > 0:
            raise InvalidInput(f"--dask-resources expects NAME=AMOUNT[,NAME=AMOUNT] with AMOUNT > 0, got {item!r}")
        out.append((name.strip(), value))
    return tuple(out)


def dispatch(todo: list[Job], results: Path, engine: EngineConfig, track: Any = None) -> Iterator[JobRecord]:
    """Run ``todo`` on a cluster engine, yielding one ``JobRecord`` per job as it ends (or is submitted).
    ``track``: the ``bench run --track`` target, handed to the worker or task that runs each job, which logs it."""
    results = Path(results).resolve()  # workers elsewhere may have another working directory
    if engine.name == "dask":
        yield from run_dask(todo, results, engine, track)
    elif engine.name == "submitit":
        yield from slurm.run_sweep(todo, results, engine.slurm, track)
    else:
        raise ValueError(
            f"dispatch() runs dask and submitit; the local engine runs in bench.run.runner (got {engine.name!r})"
        )


def _connect(scheduler: str) -> Any:
    """A ``distributed.Client`` on ``scheduler``; an unreachable address is one line (``ClusterUnavailable``)."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterUnavailable(
            f"--scheduler {scheduler}: no Dask scheduler answers there within {CONNECT_TIMEOUT_S:.0f} s ({first}); "
            "check the address (the scheduler prints it, or read it from its --scheduler-file)"
        ) from None


def wait_for_first_worker(client: Any, scheduler: str, seconds: float) -> None:
    """Return once a worker has joined ``client``'s cluster, saying (one stderr line) that it waits when
    none has yet; after ``seconds`` without one, ``ClusterUnavailable``."""
    if client.scheduler_info(n_workers=-1).get("workers"):
        return
    print(
        f"bench: waiting up to {seconds:.0f} s for the first Dask worker to join {scheduler} (--wait-workers)",
        file=sys.stderr,
        flush=True,
    )
    try:
        client.wait_for_workers(1, timeout=seconds)
    except (TimeoutError, OSError):
        raise ClusterUnavailable(
            f"no Dask worker joined the scheduler at {scheduler} within {seconds:.0f} s (--wait-workers); start "
            "workers with `dask worker SCHEDULER --nthreads 1`, or give them longer with --wait-workers SECONDS"
        ) from None


@contextlib.contextmanager
def dask_client(scheduler: str | None, n_workers: int, wait_workers: float = 300.0) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` with at least one worker (waited for up to ``wait_workers``
    seconds), or on a LocalCluster of ``n_workers`` processes of one thread each; closed (and the cluster
    stopped) on exit."""
    import dask
    from distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler:
            client = stack.enter_context(_connect(scheduler))
            wait_for_first_worker(client, scheduler, wait_workers)
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


def run_dask(todo: list[Job], results: Path, engine: EngineConfig, track: Any = None) -> Iterator[JobRecord]:
    """One Dask task per job (``run_job`` on a worker, never here), yielded as each ends.

    ``pure=False``: every submission runs (a rerun of the same job is not served from Dask's memory).
    A job whose workers kept dying (Dask's ``KilledWorker`` after its allowed failures) is recorded as
    crashed, with every death in its sidecar; the sweep goes on. Leaving early cancels the rest."""
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from bench.run.job import run_job

    restrictions: dict[str, Any] = {}
    if engine.dask_resources:
        restrictions["resources"] = dict(engine.dask_resources)
    if engine.dask_workers:
        restrictions.update(workers=list(engine.dask_workers), allow_other_workers=False)
    with dask_client(engine.scheduler, engine.n_jobs, engine.wait_workers) as client:
        require_worker_gpus(client, todo, engine)
        futures = {client.submit(run_job, job, results, track=track, pure=False, **restrictions): job for job in todo}
        try:
            for future in as_completed(futures):
                try:
                    yield future.result()
                except KilledWorker as exc:
                    yield record_killed(futures[future], results, str(exc))
        finally:
            client.cancel(list(futures))


def _visible_gpus() -> int:
    """On a Dask worker: how many CUDA devices torch sees there."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def require_worker_gpus(client: Any, todo: list[Job], engine: EngineConfig) -> None:
    """Jobs on ``cuda`` need workers with a GPU: refuse (one line, before any job starts) when the workers
    that have joined have none, or when some have none and no ``--dask-resources`` keeps the jobs off them."""
    from bench.run.device_check import DeviceUnavailable

    devices = sorted({j.train.device for j in todo if j.train.device.startswith("cuda")})
    if not devices:
        return
    gpus = client.run(_visible_gpus)
    without = sorted(addr for addr, n in gpus.items() if n == 0)
    if len(without) == len(gpus):
        raise DeviceUnavailable(
            f"device {devices[0]!r} requested, but torch sees no CUDA device on the Dask workers "
            f"({', '.join(without)}); start workers on GPU nodes, or run with --device cpu"
        )
    if without and not engine.dask_resources and not engine.dask_workers:
        raise DeviceUnavailable(
            f"device {devices[0]!r} requested, but Dask workers {', '.join(without)} have no CUDA device; start "
            "the GPU workers with `--resources GPU=1` and run with --dask-resources GPU=1 to keep the jobs there"
        )


def record_killed(job: Job, results: Path, why: str) -> JobRecord:
    """The failed record of a job whose worker processes died on every try (Dask gave up on it)."""
    from bench.results.job_files import paths, prior_deaths
    from bench.results.store import read_record, write_record

    side = paths(job, results)["sidecar"]
    died = prior_deaths(read_record(side), job.key)
    record = JobRecord.of(
        job,
        Status.FAILED,
        error=f"{CRASHED}; Dask gave up after {len(died) or 'repeated'} worker deaths ({why.splitlines()[0][:200]})",
        crashed_pid=died[-1].get("pid") if died else None,
        attempts=len(died) or None,
        died=died or None,
    )
    write_record(side, record)
    return record
