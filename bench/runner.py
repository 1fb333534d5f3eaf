"""Run jobs: train, predict, score and store each one; skip finished jobs; record failures.

``run_job`` is the unit of work a joblib worker (or a SLURM task, or a Dask worker) executes. It
claims the job with a file lock (``bench.store.job_lock``) so any number of processes, on one machine
or on a shared filesystem, can work through the same results folder: a job another process holds
is not started twice, a finished job is never retrained, and a late failure never replaces an ``ok``
result. It builds everything from the plain ``Job`` record, writes its own results atomically and
returns a small status dict, never a DataFrame: one failing job never loses another's results
(execution.md section 5). The only broad ``except`` in the project is here, at the per-job boundary.

``run_jobs`` dispatches the unfinished jobs (sequentially or to loky workers). When a worker process
dies, only the job that was running on it is marked failed: if several were in flight, each of them
is re-run alone in a fresh process and only one that kills its process again fails. When the driver
is interrupted (Ctrl-C, SIGTERM), the workers are stopped with it.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import __version__
from bench.config import Job
from bench.store import (
    atomic_write_json,
    atomic_write_parquet,
    check_done,
    clean_job_temporaries,
    clean_stale,
    confine,
    is_done,
    job_dir,
    job_lock,
    read_sidecar,
    verify_result,
)

#: What a dead worker's job records as its error.
CRASHED = "worker process died while running this job (out of memory or a crash in native code)"


def paths(job: Job, results: Path) -> dict[str, Path]:
    """The job's files (Parquet, sidecar, checkpoint, predictions, lock), all inside ``results``."""
    folder = job_dir(results, job.dataset, job.arch)
    base = confine(results, folder / job.stem)
    if base.parent != folder:
        raise ValueError(f"job stem {job.stem!r} cannot name a file in {folder}")
    return {k: base.with_suffix(s) for k, s in
            (("parquet", ".parquet"), ("sidecar", ".json"), ("checkpoint", ".pt"), ("predictions", ".pred.npz"),
             ("lock", ".lock"))}


def environment() -> dict[str, Any]:
    import torch

    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    versions = {"bench": __version__, "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                "python": platform.python_version()}
    return {"git_sha": sha, "versions": versions, "host": platform.node(), "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def is_finished(job: Job, results: Path) -> bool:
    return is_done(paths(job, results)["sidecar"], job.key)


def _sidecar(job: Job, status: str, **extra: Any) -> dict[str, Any]:
    return {"job": job.to_dict(), "key": job.key, "status": status, **extra}


def _status(job: Job, status: str, seconds: float = 0.0, error: str = "", **extra: Any) -> dict[str, Any]:
    return {"label": job.label, "key": job.key, "status": status, "seconds": seconds, "error": error, **extra}


def run_job(job: Job, results: Path | str, progress: bool = False, *, force: bool = False,
            wait: bool = True) -> dict[str, Any]:
    """Claim, train and score one job; write its Parquet and sidecar.

    Returns {label, key, status, seconds, error}: status ``ok``, ``failed``, ``skipped`` (already
    finished, perhaps by another process: never retrained unless ``force``) or ``busy`` (another
    process holds the job and ``wait`` is False). With ``wait``, a held job is waited for: if its
    holder finished or failed it, that outcome is returned; if the holder died, the job runs here.
    Safe to call from any process on a shared filesystem.
    """
    from filelock import Timeout

    results = Path(results)
    p = paths(job, results)
    lock = job_lock(p["sidecar"])
    p["sidecar"].parent.mkdir(parents=True, exist_ok=True)
    before = None  # the sidecar as it was while another process held the job
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            return _status(job, "busy")
        before = read_sidecar(p["sidecar"]) or {}
        lock.acquire()
    try:
        if not force and is_finished(job, results):
            return _status(job, "skipped", note="finished by another process" if before is not None else "")
        side = read_sidecar(p["sidecar"]) or {}
        if before is not None and side != before and side.get("status") == "failed" and side.get("key") == job.key:
            return _status(job, "failed", error=f"{side.get('error', '')} (recorded by another process)")
        clean_job_temporaries(p["sidecar"].parent, job.stem)
        return _run_claimed(job, results, p, progress)
    finally:
        lock.release()


def _run_claimed(job: Job, results: Path, p: dict[str, Path], progress: bool) -> dict[str, Any]:
    """Run ``job`` while holding its lock; a failure never replaces a verified ``ok`` result."""
    start = time.perf_counter()
    previous = read_sidecar(p["sidecar"]) if check_done(p["sidecar"], job.key)[0] else None
    started = time.time()
    atomic_write_json(p["sidecar"], _sidecar(job, "running", started=started, pid=os.getpid(),
                                             host=socket.gethostname()))
    try:
        from bench.execute import execute

        rows, info = execute(job, results, p, progress=progress)
        atomic_write_parquet(p["parquet"], rows)
        side = _sidecar(job, "ok", seconds=time.perf_counter() - start, n_written=len(rows), **info,
                        started=started, environment=environment())
        atomic_write_json(p["sidecar"], side)
        return _status(job, "ok", side["seconds"])
    except Exception as exc:  # the per-job boundary: record, never lose the sweep
        error = f"{type(exc).__name__}: {exc}"
        failure = {"error": error, "traceback": traceback.format_exc(), "seconds": time.perf_counter() - start,
                   "environment": environment()}
        if previous is not None and verify_result(p["sidecar"], previous)[1] is not None:
            previous = None  # the old Parquet was replaced before the failure: nothing to keep
        if previous is not None:  # a recomputation (--force) failed: keep the verified result, note the failure
            previous.pop("_path", None)
            atomic_write_json(p["sidecar"], {**previous, "last_failure": {**failure, "at": time.time()}})
            error += " (the earlier ok result is kept)"
        else:
            atomic_write_json(p["sidecar"], _sidecar(job, "failed", **failure))
        return _status(job, "failed", time.perf_counter() - start, error)


def _lock_is_free(job: Job, results: Path, timeout: float = 0.0) -> bool:
    from filelock import Timeout

    lock = job_lock(paths(job, results)["sidecar"])
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        return False
    lock.release()
    return True


def mark_crashed(jobs: list[Job], results: Path) -> list[dict[str, Any]]:
    """Jobs left 'running' by a dead process (their lock is free) become failed rows (the sweep goes on).

    A 'running' job whose lock is held belongs to a live process elsewhere and is left alone.
    """
    out = []
    for job in jobs:
        side = read_sidecar(paths(job, results)["sidecar"])
        if side and side.get("status") == "running" and side.get("key") == job.key and _lock_is_free(job, results):
            out.append(_record_crash(job, results, side.get("pid")))
    return out


def _record_crash(job: Job, results: Path, pid: int | None = None) -> dict[str, Any]:
    atomic_write_json(paths(job, results)["sidecar"], _sidecar(job, "failed", error=CRASHED, crashed_pid=pid))
    return _status(job, "failed", error=CRASHED)


def run_jobs(jobs: list[Job], results: Path | str, n_jobs: int = 1, force: bool = False,
             progress: bool = True, engine: Any = None) -> Iterator[dict[str, Any]]:
    """Run the unfinished jobs (all with ``force``), yielding one status dict per job as it ends.

    ``engine``: a ``bench.engines.EngineConfig``; None or ``loky`` runs here (``n_jobs`` workers).
    Jobs another process is running are done last: waited for, then read (or run here if that
    process died). Stale temporary files under ``results/runs`` are removed first.
    """
    results = Path(results)
    clean_stale(results)
    todo = [j for j in jobs if force or not is_finished(j, results)]
    for job in jobs:
        if job not in todo:
            yield _status(job, "skipped")
    if engine is not None and engine.name != "loky" and todo:  # Dask or SLURM (bench.engines)
        from bench.engines import dispatch

        yield from dispatch(todo, results, engine)
        return
    busy = []
    by_key = {j.key: j for j in todo}
    for status in _dispatch(todo, results, n_jobs, progress, force=force, wait=False):
        if status["status"] == "busy":
            busy.append(by_key[status["key"]])
        else:
            yield status
    yield from _dispatch(busy, results, n_jobs, progress, force=force, wait=True)


def _dispatch(todo: list[Job], results: Path, n_jobs: int, progress: bool, **kw: Any) -> Iterator[dict[str, Any]]:
    if n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job, results, progress=progress, **kw)
        return
    yield from _run_parallel(todo, results, n_jobs, **kw)


# ---------------------------------------------------------------------------------------------- workers

_watchdog_started = False


def _exit_with_driver(driver: int) -> None:
    """In a worker process: exit as soon as the driver process ``driver`` (our parent) is gone."""
    global _watchdog_started
    if _watchdog_started or os.getppid() != driver:
        return
    _watchdog_started = True

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="bench-driver-watchdog", daemon=True).start()


def _worker_job(job: Job, results: Path, driver: int, kw: dict[str, Any]) -> dict[str, Any]:
    """``run_job`` in a worker process that stops when the driver dies (even by SIGKILL)."""
    _exit_with_driver(driver)
    return run_job(job, results, **kw)


def _run_parallel(todo: list[Job], results: Path, n_jobs: int, **kw: Any) -> Iterator[dict[str, Any]]:
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    driver = os.getpid()
    while todo:
        done: set[str] = set()
        round_start = time.time()
        try:
            with parallel_config(backend="loky", inner_max_num_threads=max(j.train.threads for j in todo)):
                for status in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                        delayed(_worker_job)(job, results, driver, kw) for job in todo):
                    done.add(status["key"])
                    yield status
            return
        except TerminatedWorkerError:
            left = []
            for job in (j for j in todo if j.key not in done):
                side = read_sidecar(paths(job, results)["sidecar"]) or {}
                if check_done(paths(job, results)["sidecar"], job.key)[0] and side.get("started", 0) >= round_start:
                    done.add(job.key)  # finished in this round; its status was lost with the pool
                    yield _status(job, "ok", side.get("seconds", 0.0))
                else:
                    left.append(job)
            # the jobs that were running; if none can be told (it died before its sidecar), the first ones sent
            suspects = _in_flight(left, results, round_start) or left[:n_jobs]
            if len(suspects) == 1:
                crashed = mark_crashed(suspects, results) or [_record_crash(suspects[0], results)]
                done |= {c["key"] for c in crashed}
                yield from crashed
            else:  # more than one was running: re-run each alone, so only the culprit fails
                for status in _run_isolated(suspects, results, kw):
                    done.add(status["key"])
                    yield status
            todo = [j for j in todo if j.key not in done]


def _in_flight(jobs: list[Job], results: Path, since: float) -> list[Job]:
    """The jobs a dead loky pool was running: 'running' sidecars written since ``since``, lock now free."""
    out = []
    for job in jobs:
        side = read_sidecar(paths(job, results)["sidecar"]) or {}
        if (side.get("status") == "running" and side.get("key") == job.key and side.get("started", 0) >= since
                and _lock_is_free(job, results, timeout=3)):
            out.append(job)
    return out


def _run_isolated(jobs: list[Job], results: Path, kw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` one at a time in a single worker process (a fresh one after each death); a job
    whose process dies is marked failed."""
    from joblib.externals.loky import ProcessPoolExecutor
    from joblib.externals.loky.process_executor import BrokenProcessPool

    executor = None
    try:
        for job in jobs:
            executor = executor or ProcessPoolExecutor(max_workers=1)
            try:
                yield executor.submit(_worker_job, job, results, os.getpid(), {**kw, "wait": True}).result()
            except BrokenProcessPool:  # TerminatedWorkerError is one: this job killed its process
                executor.shutdown(wait=True, kill_workers=True)
                executor = None
                yield (mark_crashed([job], results) or [_record_crash(job, results)])[0]
    finally:
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)


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
    rows = []
    for job in jobs:
        side = read_sidecar(paths(job, results)["sidecar"]) or {}
        done, problem = check_done(paths(job, results)["sidecar"], job.key)
        state = "done" if done else "damaged" if problem else side.get("status", "todo") \
            if side.get("key") == job.key else "todo"
        rows.append({"dataset": job.dataset, "arch": job.arch, "protocol": job.protocol, "fold": job.fold,
                     "seed": job.seed, "state": state, "key": job.key})
    return pd.DataFrame(rows)
