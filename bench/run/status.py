"""Where a sweep stands: done / running / queued / failed / missing per job, from the files alone.

A job's state comes from its sidecar in ``<results>/runs`` and, for jobs submitted to SLURM
(``<results>/slurm/array-*.json``), from ``squeue``: a task still in the queue is ``queued`` or
``running`` whatever an older sidecar says; a task that left the queue without a result is ``failed``
with the last line of its SLURM log as the reason. With a plan (the jobs a ``bench run`` command
would run), jobs nobody started are ``missing``; without one, only jobs with files are listed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Job
from bench.results.store import read_sidecar, sidecars
from bench.run import slurm

STATES = ("done", "running", "queued", "failed", "missing")
COLUMNS = ["dataset", "arch", "protocol", "fold", "seed", "state", "reason", "slurm_task", "key"]


def one_line(text: str, width: int = 160) -> str:
    """The first non-empty line of an error message (``Type: message``), cut to ``width``."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def job_state(
    side: dict[str, Any] | None, parquet_exists: bool, task: str | None, queue: dict[str, str] | None, results: Path
) -> tuple[str, str]:
    """(state, reason) of one job from its sidecar (already matched to the job's key), whether its
    Parquet file exists, its latest SLURM task id and the queue (None: no SLURM to ask)."""
    qstate = queue.get(task) if queue is not None and task else None
    if side and side.get("status") == "ok" and parquet_exists:
        return "done", ""
    if qstate in slurm.RUNNING_STATES:
        return "running", f"SLURM {qstate.lower()}"
    if qstate is not None:
        return "queued", f"SLURM {qstate.lower()}"
    if side and side.get("status") == "failed":
        return "failed", one_line(side.get("error", "")) or "failed (no reason recorded)"
    if task and queue is not None:  # submitted, no longer queued, no final result
        tail = slurm.task_log_tail(results, task)
        return "failed", f"SLURM task {task} ended without a result" + (f": {one_line(tail)}" if tail else "")
    if side and side.get("status") == "running":
        started = side.get("started")
        return "running", time.strftime("started %Y-%m-%d %H:%M:%S", time.localtime(started)) if started else ""
    if side and side.get("status") == "ok":
        return "failed", "sidecar says ok but the Parquet file is missing"
    return "missing", ""


def _queue(results: Path, subs: dict[str, tuple[str, float]]) -> dict[str, str] | None:
    return slurm.queue_states() if subs else None


def sweep_status(jobs: list[Job], results: Path | str) -> pd.DataFrame:
    """One row per planned job: its identity, state, one-line reason and SLURM task id."""
    from bench.run.execute import paths

    results = Path(results)
    subs = slurm.submissions(results)
    queue = _queue(results, subs)
    rows = []
    for job in jobs:
        p = paths(job, results)
        side = read_sidecar(p["sidecar"])
        side = side if side and side.get("key") == job.key else None
        task = subs.get(job.key, (None, 0.0))[0]
        state, reason = job_state(side, p["parquet"].exists(), task, queue, results)
        rows.append(
            {
                "dataset": job.dataset,
                "arch": job.arch,
                "protocol": job.protocol,
                "fold": job.fold,
                "seed": job.seed,
                "state": state,
                "reason": reason,
                "slurm_task": task or "",
                "key": job.key,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def files_status(results: Path | str) -> pd.DataFrame:
    """The state of every job found in ``results`` (sidecars and SLURM submissions), without a plan."""
    results = Path(results)
    subs = slurm.submissions(results)
    queue = _queue(results, subs)
    seen: dict[str, dict[str, Any]] = {}
    for side in sidecars(results):
        job = side.get("job", {})
        state, reason = job_state(
            side,
            Path(side["_path"]).with_suffix(".parquet").exists(),
            subs.get(side.get("key", ""), (None, 0.0))[0],
            queue,
            results,
        )
        seen[side.get("key", "")] = {
            **{k: job.get(k) for k in ("dataset", "arch", "protocol", "fold", "seed")},
            "state": state,
            "reason": reason,
            "slurm_task": subs.get(side.get("key", ""), ("", 0.0))[0],
            "key": side.get("key"),
        }
    for key, identity in slurm.submitted_jobs(results).items():
        if key not in seen:
            task = subs[key][0]
            state, reason = job_state(None, False, task, queue, results)
            seen[key] = {**identity, "state": state, "reason": reason, "slurm_task": task, "key": key}
    df = pd.DataFrame(list(seen.values()), columns=COLUMNS)
    return df.sort_values(["dataset", "arch", "protocol", "fold", "seed"]).reset_index(drop=True)


def counts(table: pd.DataFrame) -> dict[str, int]:
    return {s: int((table["state"] == s).sum()) for s in STATES}


def format_status(table: pd.DataFrame) -> str:
    """The counts line, then one line per job that is not done (failures with their reason)."""
    c = counts(table)
    head = f"{len(table)} jobs: " + " | ".join(f"{c[s]} {s}" for s in STATES)
    pending = table[table["state"] != "done"]
    if pending.empty:
        return head
    shown = pending[["state", "dataset", "arch", "protocol", "fold", "seed", "slurm_task", "reason"]]
    return head + "\n" + shown.to_string(index=False)
