"""Where one job's files lie in the results folder, whether its result is stored, and its dead tries.

Light on purpose (no torch): the driver of a sweep asks these of every planned job before it sends any
job to a worker process, a Dask worker or a SLURM task (``bench.run.runner``, ``bench.run.engines``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.config import Job
from bench.results.record import JobRecord, Status
from bench.results.store import confine, is_done, job_dir


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
