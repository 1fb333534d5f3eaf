"""Where a sweep stands, per job: done / damaged / running / crashed / queued / failed / missing, with the reason.

``job_state`` is the one job-state rule of the project: ``bench status``, ``bench run --dry-run``
(``bench.run.runner.dry_run_table``) and the runner's skip rule (a job is skipped exactly when it is
``done``) agree. From the files (``bench.results.store.stored_state``): ``done`` (rows, checkpoint and
predictions verify), ``damaged`` (naming each damaged file; the next run recomputes the job),
``running`` (a live process holds its lock), ``crashed`` (a ``running`` sidecar whose lock is free: its
process died; the next run redoes it), ``failed`` and ``missing``. For jobs submitted to SLURM
(``<results>/slurm/array-*.json``), ``squeue`` adds: a task still in the queue is ``queued`` or
``running`` whatever an older sidecar says; a task that left the queue without a result is ``failed``
with the last line of its SLURM log as the reason. With a plan (the jobs a ``bench run`` command would
run), jobs nobody started are ``missing``; without one, only jobs with files are listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import Job
from bench.results.store import identity_from_path, read_sidecar, sidecar_paths, stored_state
from bench.run import slurm
from bench.run.where import attempts_note

STATES = ("done", "damaged", "running", "crashed", "queued", "failed", "missing")
COLUMNS = ["dataset", "arch", "protocol", "fold", "seed", "state", "reason", "slurm_task", "key"]


def one_line(text: str, width: int = 160) -> str:
    """The first non-empty line of an error message (``Type: message``), cut to ``width``."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def job_state(
    sidecar: Path | None, key: str | None, task: str | None, queue: dict[str, str] | None, results: Path
) -> tuple[str, str]:
    """(state, reason) of the job ``key`` whose sidecar is at ``sidecar`` (None: it has none), its latest
    SLURM task id and the queue (None: no SLURM to ask)."""
    stored, reason, side = stored_state(sidecar, key) if sidecar is not None else ("missing", "", None)
    qstate = queue.get(task) if queue is not None and task else None
    if stored == "done":
        return "done", attempts_note(side or {})  # '' unless a worker died under an earlier try
    if qstate in slurm.RUNNING_STATES:
        return "running", f"SLURM {qstate.lower()}"
    if qstate is not None:
        return "queued", f"SLURM {qstate.lower()}"
    if stored in ("damaged", "failed"):
        return stored, one_line(reason, 400 if stored == "damaged" else 160)
    if task and queue is not None:  # submitted, no longer queued, no final result
        tail = slurm.task_log_tail(results, task)
        return "failed", f"SLURM task {task} ended without a result" + (f": {one_line(tail)}" if tail else "")
    return stored, reason


def _queue(results: Path, subs: dict[str, tuple[str, float]]) -> dict[str, str] | None:
    return slurm.queue_states() if subs else None


def sweep_status(jobs: list[Job], results: Path | str) -> pd.DataFrame:
    """One row per planned job: its identity, state, one-line reason and SLURM task id."""
    from bench.results.job_files import paths

    results = Path(results)
    subs = slurm.submissions(results)
    queue = _queue(results, subs)
    rows = []
    for job in jobs:
        task = subs.get(job.key, (None, 0.0))[0]
        state, reason = job_state(paths(job, results)["sidecar"], job.key, task, queue, results)
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
    for path in sidecar_paths(results):
        side = read_sidecar(path)
        job = side.get("job", {}) if side else identity_from_path(path)
        key = side.get("key") if side else None
        state, reason = job_state(path, key, subs.get(key or "", (None, 0.0))[0], queue, results)
        seen[key or str(path)] = {
            **{k: job.get(k) for k in ("dataset", "arch", "protocol", "fold", "seed")},
            "state": state,
            "reason": reason,
            "slurm_task": subs.get(key or "", ("", 0.0))[0],
            "key": key,
        }
    for key, identity in slurm.submitted_jobs(results).items():
        if key not in seen:
            task = subs[key][0]
            state, reason = job_state(None, key, task, queue, results)
            seen[key] = {**identity, "state": state, "reason": reason, "slurm_task": task, "key": key}
    df = pd.DataFrame(list(seen.values()), columns=COLUMNS)
    return df.sort_values(["dataset", "arch", "protocol", "fold", "seed"]).reset_index(drop=True)


def counts(table: pd.DataFrame) -> dict[str, int]:
    return {s: int((table["state"] == s).sum()) for s in STATES}


def format_status(table: pd.DataFrame) -> str:
    """The counts line, then one line per job that is not done (failures with their reason)."""
    c = counts(table)
    head = f"{len(table)} jobs: " + " | ".join(f"{c[s]} {s}" for s in STATES)
    pending = table[(table["state"] != "done") | (table["reason"] != "")]  # done after a worker died: shown
    if pending.empty:
        return head
    shown = pending[["state", "dataset", "arch", "protocol", "fold", "seed", "slurm_task", "reason"]]
    return head + "\n" + shown.to_string(index=False)
