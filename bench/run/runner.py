"""Drive a sweep: dispatch the planned jobs, resume from what is stored, and turn dead workers into failures.

``run_jobs`` takes the planned ``Job`` list (``bench.run.plan``), skips every job whose verified result
is already stored (so the same command resumes), runs the rest through ``bench.run.job.run_job`` here
(sequentially) or on worker processes forked from a server that has already imported torch and the job
code, so they share those pages (``bench.run.workers``), or on Dask or SLURM (``bench.run.engines``), and
yields one ``JobRecord`` per job as it ends. This module imports no torch: a driver whose jobs run
elsewhere never loads it. Jobs another process holds are done last: waited for, then read.
When a worker process dies, only the job that was running on it is marked failed (``crashed``): if
several were in flight, each of them is re-run alone in a fresh process and only one that kills its
process again fails. When the driver is interrupted (Ctrl-C, SIGTERM), the workers are stopped with it.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Job
from bench.results.job_files import is_finished, paths, prior_deaths
from bench.results.record import CRASHED, JobRecord, Status
from bench.results.store import check_done, clean_stale, job_lock, read_record, write_record
from bench.run.engines import dispatch
from bench.run.job import run_job
from bench.run.locks import probe_flock
from bench.run.workers import worker_job, worker_pool

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
    in_driver: bool = True,
) -> Iterator[JobRecord]:
    """Run the unfinished jobs (all with ``force``), yielding one ``JobRecord`` per job as it ends.

    ``engine``: a ``bench.run.engines.EngineConfig``; None or ``local`` runs here (``n_jobs`` workers).
    ``in_driver``: with one worker, run the jobs in this process; False runs them in a worker process even
    then (``bench run`` does: its driver never imports torch, and a job that kills its process is recorded
    as crashed while the sweep goes on).
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
    for record in _dispatch(todo, results, n_jobs, progress, in_driver, force=force, wait=False, track=track):
        if record.status is Status.BUSY:
            busy.append(by_key[record.key])
        else:
            yield record
    yield from _dispatch(busy, results, n_jobs, progress, in_driver, force=force, wait=True, track=track)


def _dispatch(
    todo: list[Job], results: Path, n_jobs: int, progress: bool, in_driver: bool, **kw: Any
) -> Iterator[JobRecord]:
    if not todo:
        return
    if in_driver and (n_jobs <= 1 or len(todo) <= 1):
        for job in todo:
            yield run_job(job, results, progress=progress, **kw)
        return
    if n_jobs <= 1:  # one worker process: its epoch bars are the only ones on the terminal
        kw["progress"] = progress
    yield from _run_parallel(todo, results, max(1, min(n_jobs, len(todo))), **kw)


def _run_parallel(todo: list[Job], results: Path, n_jobs: int, **kw: Any) -> Iterator[JobRecord]:
    while todo:
        done: set[str] = set()
        round_start = time.time()
        try:
            with worker_pool(n_jobs, threads=max(j.train.threads for j in todo)) as pool:
                for future in as_completed([pool.submit(worker_job, job, results, kw) for job in todo]):
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
            with worker_pool(1, job.train.threads) as pool:
                record = pool.submit(worker_job, job, results, {**kw, "wait": True}).result()
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
