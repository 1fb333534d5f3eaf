"""Run one job: a ``Job`` in, a ``JobRecord`` (``bench.results.record``) out.

``run_job`` is the unit of work a local worker process, a Dask worker or a SLURM task executes. It claims
the job with a file lock (``bench.results.store.job_lock``), so any number of processes, on one machine or
on a shared filesystem, can work through the same results folder: a job another process holds is
not started twice, a finished job is never recomputed (unless forced), and a late failure never
replaces an ``ok`` result. It writes the job's Parquet rows and sidecar atomically and returns the
job's record, never a DataFrame, so one failing job never loses another's results. The only broad
``except`` of the project is here, at the per-job boundary: it records the error with its traceback.

This module imports no torch: the job's work (``bench.run.execute``, which does) is imported by the
process that runs it, so a driver can hand ``run_job`` to Dask or pickle it for SLURM without torch.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import FATAL_ERRNOS, environment_error
from bench.results.artefacts import describe as describe_artefacts
from bench.results.job_files import is_finished, paths, prior_deaths
from bench.results.provenance import environment
from bench.results.record import JobRecord, Status
from bench.results.store import (
    atomic_write_parquet,
    check_done,
    clean_job_temporaries,
    job_lock,
    read_record,
    verify_result,
    write_record,
)
from bench.run.where import where_running


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
        from bench.run.execute import execute  # torch and the networks: only where a job runs

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


def _stop_on_full_disk(exc: Exception) -> None:
    """Re-raise a full disk or read-only folder (recorded in the sidecar already): every later job
    would fail the same way, so the sweep stops with one line (``bench.errors.environment_error``)."""
    if isinstance(exc, OSError) and exc.errno in FATAL_ERRNOS and environment_error(exc):
        raise exc
