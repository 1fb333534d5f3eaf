"""Drive a sweep: dispatch the planned jobs, resume from what is stored, and turn dead workers into failures.

``run_jobs`` takes the planned ``Job`` list (``bench.run.plan``), skips every job whose verified result
is already stored (so the same command resumes), runs the rest through ``bench.run.execute.run_job`` here
(sequentially, or on worker processes forked from a server that has already imported torch and the job
code, so they share those pages) or on Dask or SLURM (``bench.run.engines``), and yields one ``JobRecord``
per job as it ends. Jobs another process holds are done last: waited for, then read.
When a worker process dies, only the job that was running on it is marked failed (``crashed``): if
several were in flight, each of them is re-run alone in a fresh process and only one that kills its
process again fails. When the driver is interrupted (Ctrl-C, SIGTERM), the workers are stopped with it.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Job
from bench.results.record import CRASHED, JobRecord, Status
from bench.results.store import check_done, clean_stale, job_lock, read_record, write_record
from bench.run.engines import dispatch
from bench.run.execute import is_finished, paths, prior_deaths, run_job
from bench.run.locks import probe_flock

__all__ = ["CRASHED", "dry_run_table", "is_finished", "mark_crashed", "paths", "run_job", "run_jobs", "stop_on_signals"]


def _lock_is_free(job: Job, results: Path, timeout: float = 0.0) -> bool:
    from filelock import Timeout

    lock = job_lock(paths(job, results)["sidecar"])
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        return False
    lock.release()
    return True


def _running_here(job: Job, results: Path) -> JobRecord | None:
    """The job's ``running`` record, if its sidecar has one for this job's key."""
    record = read_record(paths(job, results)["sidecar"])
    return record if record and record.status is Status.RUNNING and record.key == job.key else None


def mark_crashed(jobs: list[Job], results: Path) -> list[JobRecord]:
    """Jobs left 'running' by a dead process (their lock is free) become failed records (the sweep goes on).

    A 'running' job whose lock is held belongs to a live process elsewhere and is left alone.
    """
    out = []
    for job in jobs:
        running = _running_here(job, results)
        if running is not None and _lock_is_free(job, results):
            out.append(_record_crash(job, results, running.pid))
    return out


def _record_crash(job: Job, results: Path, pid: int | None = None) -> JobRecord:
    died = prior_deaths(read_record(paths(job, results)["sidecar"]), job.key)  # this death and earlier ones
    pid = pid if pid is not None or not died else died[-1].get("pid")
    record = JobRecord.of(
        job, Status.FAILED, error=CRASHED, crashed_pid=pid, attempts=len(died) or None, died=died or None
    )
    write_record(paths(job, results)["sidecar"], record)
    return record


def run_jobs(
    jobs: list[Job],
    results: Path | str,
    n_jobs: int = 1,
    force: bool = False,
    progress: bool = True,
    engine: Any = None,
    track: Any = None,
) -> Iterator[JobRecord]:
    """Run the unfinished jobs (all with ``force``), yielding one ``JobRecord`` per job as it ends.

    ``engine``: a ``bench.run.engines.EngineConfig``; None or ``local`` runs here (``n_jobs`` workers).
    ``track``: a ``bench.tracking.target.Tracking`` each job is logged to as it ends, by the process that ran
    it (a worker here, a Dask worker or a SLURM task).
    Jobs another process is running are done last: waited for, then read (or run here if that
    process died). Stale temporary files under ``results/runs`` are removed first.
    """
    results = Path(results)
    clean_stale(results)
    todo = [j for j in jobs if force or not is_finished(j, results)]
    if todo:
        probe_flock(results)  # the job locks need flock here: stop before any job starts if it does not work
    for job in jobs:
        if job not in todo:
            yield JobRecord.of(job, Status.SKIPPED)
    if engine is not None and engine.name != "local" and todo:  # Dask or SLURM (bench.run.engines)
        yield from dispatch(todo, results, engine, track)
        return
    busy = []
    by_key = {j.key: j for j in todo}
    for record in _dispatch(todo, results, n_jobs, progress, force=force, wait=False, track=track):
        if record.status is Status.BUSY:
            busy.append(by_key[record.key])
        else:
            yield record
    yield from _dispatch(busy, results, n_jobs, progress, force=force, wait=True, track=track)


def _dispatch(todo: list[Job], results: Path, n_jobs: int, progress: bool, **kw: Any) -> Iterator[JobRecord]:
    if n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job, results, progress=progress, **kw)
        return
    yield from _run_parallel(todo, results, n_jobs, **kw)


# ---------------------------------------------------------------------------------------------- workers

#: What a job imports: ``bench.run.execute`` and the modules it loads lazily. The pool's fork server
#: imports them once; every worker is forked from it and shares those pages instead of importing
#: torch itself (about 330 MiB of private memory per worker otherwise: benchmarks/README.md).
PRELOAD = (
    "torch",
    "torch._dynamo",
    "torch.utils.flop_counter",
    "pyarrow.parquet",
    "tqdm.auto",
    "bench.run.execute",
    "bench.analysis.compute",
    "bench.run.devices",
    "bench.results.selection",
    "bench.analysis.stats",
    "bench.analysis.tables",
)

#: The thread-count variables a worker sets to the jobs' torch thread count (what joblib's loky did),
#: for the libraries loaded after the fork; torch's own count is set by each job (``seed_everything``).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def _pool_context() -> BaseContext:
    """The start method of the worker processes: a fork server that has imported ``PRELOAD`` where the
    platform has one (Linux, macOS). Windows has none: there each worker is a fresh interpreter
    (``spawn``) that imports torch itself; the same code path, only without the shared pages."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))  # read when the server starts (once per driver process)
    return ctx


_watchdog_started = False


def _exit_with_driver(alive: Connection) -> None:
    """In a worker process: exit as soon as the driver is gone (even killed by SIGKILL). ``alive`` is the
    reading end of a pipe whose writing end only the driver holds: it reads end-of-file when the
    driver's process ends. (A worker's parent is the fork server, not the driver, and the fork server
    outlives the driver while workers hold its own pipe, so the parent pid cannot tell.)"""
    global _watchdog_started
    if _watchdog_started:
        return
    _watchdog_started = True

    def watch() -> None:
        multiprocessing.connection.wait([alive])  # the driver never writes: this returns at end-of-file
        os._exit(1)

    threading.Thread(target=watch, name="bench-driver-watchdog", daemon=True).start()


def _start_worker(alive: Connection, threads: int) -> None:
    """A worker process's initializer: the jobs' thread count, and exit with the driver."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    _exit_with_driver(alive)


def _worker_job(job: Job, results: Path, kw: dict[str, Any]) -> JobRecord:
    """``run_job`` in a worker process (which stops when the driver dies: ``_start_worker``)."""
    return run_job(job, results, **kw)


@contextmanager
def _worker_pool(n_workers: int, threads: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``n_workers`` processes forked from the preloaded fork server (``_pool_context``).

    Leaving the block normally shuts the idle workers down; leaving it by an exception (Ctrl-C,
    SIGTERM, a closed generator) kills them first, so running jobs stop with the driver."""
    ctx = _pool_context()
    alive, keep = ctx.Pipe(duplex=False)  # ``keep``: the writing end, held by this process only
    executor = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_start_worker, initargs=(alive, threads))
    try:
        yield executor
    except BaseException:
        _kill_workers(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        alive.close()
        keep.close()


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes now. Python 3.14 has ``kill_workers``; before it the pool keeps
    its processes in ``_processes`` (pid -> Process)."""
    if hasattr(executor, "kill_workers"):
        executor.kill_workers()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.kill()


def _run_parallel(todo: list[Job], results: Path, n_jobs: int, **kw: Any) -> Iterator[JobRecord]:
    while todo:
        done: set[str] = set()
        round_start = time.time()
        try:
            with _worker_pool(n_jobs, threads=max(j.train.threads for j in todo)) as pool:
                for future in as_completed([pool.submit(_worker_job, job, results, kw) for job in todo]):
                    record = future.result()
                    done.add(record.key)
                    yield record
            return
        except BrokenProcessPool:  # a worker died: every job not yet returned fails with this
            left = []
            for job in (j for j in todo if j.key not in done):
                record = read_record(paths(job, results)["sidecar"])
                if (
                    check_done(paths(job, results)["sidecar"], job.key)[0]
                    and record
                    and (record.started or 0) >= round_start
                ):
                    done.add(job.key)  # finished in this round; its record was lost with the pool
                    yield record
                else:
                    left.append(job)
            # the jobs that were running; if none can be told (it died before its sidecar), the first ones sent
            suspects = _in_flight(left, results, round_start) or left[:n_jobs]
            if len(suspects) == 1:
                crashed = mark_crashed(suspects, results) or [_record_crash(suspects[0], results)]
                done |= {c.key for c in crashed}
                yield from crashed
            else:  # more than one was running: re-run each alone, so only the culprit fails
                for record in _run_isolated(suspects, results, kw):
                    done.add(record.key)
                    yield record
            todo = [j for j in todo if j.key not in done]


def _in_flight(jobs: list[Job], results: Path, since: float) -> list[Job]:
    """The jobs a dead worker pool was running: 'running' sidecars written since ``since``, lock now free."""
    out = []
    for job in jobs:
        running = _running_here(job, results)
        if running is not None and (running.started or 0) >= since and _lock_is_free(job, results, timeout=3):
            out.append(job)
    return out


def _run_isolated(jobs: list[Job], results: Path, kw: dict[str, Any]) -> Iterator[JobRecord]:
    """Run ``jobs`` one at a time, each in a fresh worker process; a job whose process dies is marked
    failed."""
    for job in jobs:
        try:
            with _worker_pool(1, job.train.threads) as pool:
                record = pool.submit(_worker_job, job, results, {**kw, "wait": True}).result()
        except BrokenProcessPool:  # this job killed its process
            record = (mark_crashed([job], results) or [_record_crash(job, results)])[0]
        yield record


# ---------------------------------------------------------------------------------------------- signals


class Stopped(KeyboardInterrupt):
    """The driver was asked to stop (SIGINT / Ctrl-C or SIGTERM); ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into ``Stopped`` in the main thread while the block runs, so the
    dispatch loops unwind and shut their worker processes down; restores the old handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def dry_run_table(jobs: list[Job], results: Path) -> pd.DataFrame:
    """One row per job: identity, ``state`` and ``reason`` by the one job-state rule
    (``bench.run.status.job_state``: done, damaged, running, crashed, queued, failed or missing) and key."""
    from bench.run.status import sweep_status

    table = sweep_status(jobs, results)
    return table[["dataset", "arch", "protocol", "fold", "seed", "state", "reason", "key"]]
