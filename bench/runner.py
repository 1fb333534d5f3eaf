"""Run jobs: train, predict, score and store each one; skip finished jobs; record failures.

``run_job`` is the unit of work a joblib worker (or a SLURM task) executes. It builds everything
from the plain ``Job`` record, writes its own results atomically and returns a small status dict,
never a DataFrame: one failing job never loses another's results (execution.md section 5). The
only broad ``except`` in the project is here, at the per-job boundary.
"""

from __future__ import annotations

import platform
import subprocess
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import __version__
from bench.config import Job
from bench.store import atomic_write_json, atomic_write_parquet, is_done, job_dir, read_sidecar

def paths(job: Job, results: Path) -> dict[str, Path]:
    base = job_dir(results, job.dataset, job.arch) / job.stem
    return {k: base.with_suffix(s) for k, s in
            (("parquet", ".parquet"), ("sidecar", ".json"), ("checkpoint", ".pt"), ("predictions", ".pred.npz"))}


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


def run_job(job: Job, results: Path | str, progress: bool = False) -> dict[str, Any]:
    """Train and score one job; write its Parquet and sidecar. Returns {label, key, status, seconds, error}."""
    results = Path(results)
    p = paths(job, results)
    start = time.perf_counter()
    atomic_write_json(p["sidecar"], _sidecar(job, "running", started=time.time()))
    try:
        from bench.execute import execute

        rows, info = execute(job, results, p, progress=progress)
        atomic_write_parquet(p["parquet"], rows)
        side = _sidecar(job, "ok", seconds=time.perf_counter() - start, n_written=len(rows), **info,
                        environment=environment())
        atomic_write_json(p["sidecar"], side)
        return {"label": job.label, "key": job.key, "status": "ok", "seconds": side["seconds"], "error": ""}
    except Exception as exc:  # the per-job boundary: record, never lose the sweep
        error = f"{type(exc).__name__}: {exc}"
        atomic_write_json(p["sidecar"], _sidecar(job, "failed", error=error, traceback=traceback.format_exc(),
                                                 seconds=time.perf_counter() - start, environment=environment()))
        return {"label": job.label, "key": job.key, "status": "failed", "seconds": time.perf_counter() - start,
                "error": error}


def mark_crashed(jobs: list[Job], results: Path) -> list[dict[str, Any]]:
    """Jobs left 'running' by a dead worker become failed rows (the sweep goes on)."""
    out = []
    for job in jobs:
        side = read_sidecar(paths(job, results)["sidecar"])
        if side and side.get("status") == "running" and side.get("key") == job.key:
            error = "worker process died while running this job (out of memory or a crash in native code)"
            atomic_write_json(paths(job, results)["sidecar"], _sidecar(job, "failed", error=error))
            out.append({"label": job.label, "key": job.key, "status": "failed", "seconds": 0.0, "error": error})
    return out


def run_jobs(jobs: list[Job], results: Path | str, n_jobs: int = 1, force: bool = False,
             progress: bool = True, engine: Any = None) -> Iterator[dict[str, Any]]:
    """Run the unfinished jobs (all with ``force``), yielding one status dict per job as it ends.

    ``engine``: a ``bench.engines.EngineConfig``; None or ``loky`` runs here (``n_jobs`` workers)."""
    results = Path(results)
    todo = [j for j in jobs if force or not is_finished(j, results)]
    for job in jobs:
        if job not in todo:
            yield {"label": job.label, "key": job.key, "status": "skipped", "seconds": 0.0, "error": ""}
    if engine is not None and engine.name != "loky" and todo:  # Dask or SLURM (bench.engines)
        from bench.engines import dispatch

        yield from dispatch(todo, results, engine)
        return
    if n_jobs <= 1 or len(todo) <= 1:
        for job in todo:
            yield run_job(job, results, progress=progress)
        return
    yield from _run_parallel(todo, results, n_jobs)


def _run_parallel(todo: list[Job], results: Path, n_jobs: int) -> Iterator[dict[str, Any]]:
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    while todo:
        done: set[str] = set()
        try:
            with parallel_config(backend="loky", inner_max_num_threads=max(j.train.threads for j in todo)):
                for status in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
                        delayed(run_job)(job, results) for job in todo):
                    done.add(status["key"])
                    yield status
            return
        except TerminatedWorkerError:
            crashed = mark_crashed([j for j in todo if j.key not in done], results)
            yield from crashed
            gone = done | {c["key"] for c in crashed}
            todo = [j for j in todo if j.key not in gone and not is_finished(j, results)]


def dry_run_table(jobs: list[Job], results: Path) -> pd.DataFrame:
    rows = []
    for job in jobs:
        side = read_sidecar(paths(job, results)["sidecar"]) or {}
        state = "done" if is_finished(job, results) else side.get("status", "todo") if side.get("key") == job.key \
            else "todo"
        rows.append({"dataset": job.dataset, "arch": job.arch, "protocol": job.protocol, "fold": job.fold,
                     "seed": job.seed, "state": state, "key": job.key})
    return pd.DataFrame(rows)

