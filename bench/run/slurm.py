"""SLURM through submitit: submit jobs as one job array, remember the task ids, ask the queue.

Each array task runs ``bench.run.execute.run_job(job, results)`` in a fresh process on a compute node,
with the submitting process's Python (``sys.executable``) and ``PYTHONPATH``, so the results folder
must be on a filesystem the nodes share. Nothing comes back through submitit: the result files are
the truth. Every submission is recorded in ``<results>/slurm/array-<id>.json`` (job key -> array task
id), which lets a later ``bench run`` or ``bench status`` tell a queued or running job from a lost one
with ``squeue`` alone (no accounting database needed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import InvalidInput, MissingInput, UnknownName
from bench.results.record import JobRecord, Status
from bench.results.store import atomic_write_json, read_record, read_sidecar, write_record

#: squeue states that mean "not started yet" and "started"; anything else listed is on its way out.
QUEUED_STATES = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED"})
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING", "RESIZING"})


@dataclass(frozen=True, slots=True)
class SlurmOptions:
    """Resources of each array task. ``cpus_per_task`` None: the job's torch thread count."""

    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time_min: int = 24 * 60
    array_parallelism: int = 16
    wait: bool = True
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("gpus_per_node", "time_min", "array_parallelism"):
            if getattr(self, name) < (0 if name == "gpus_per_node" else 1):
                raise InvalidInput(
                    f"slurm {name} must be {'>= 0' if name == 'gpus_per_node' else '>= 1'}, got {getattr(self, name)}"
                )
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise InvalidInput(f"slurm cpus_per_task must be >= 1, got {self.cpus_per_task}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise InvalidInput(f"slurm mem_gb must be > 0, got {self.mem_gb}")


SLURM_KEYS = ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "time_min", "array_parallelism")


def slurm_options(profile_section: dict[str, Any] | None, overrides: dict[str, Any], wait: bool = True) -> SlurmOptions:
    """SlurmOptions from a profile's ``slurm:`` section, then command-line values (None: not given)."""
    values = dict(profile_section or {})
    unknown = sorted(set(values) - set(SLURM_KEYS))
    if unknown:
        raise UnknownName(
            f"unknown key(s) {', '.join(unknown)} in the profile's slurm section; known: {', '.join(SLURM_KEYS)}"
        )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SlurmOptions(**values, wait=wait)


def slurm_dir(results: Path) -> Path:
    return Path(results) / "slurm"


def require_slurm() -> None:
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise MissingInput(
            "--engine submitit submits to SLURM, but `sbatch`/`squeue` are not on PATH "
            "(run on a SLURM login node, or start a local cluster with scripts/slurm-local.sh)"
        )


def task_environment() -> list[str]:
    """Shell lines run before each task: the submitting process's PYTHONPATH and the harness's env."""
    lines = ["export NO_ALBUMENTATIONS_UPDATE=1"]
    if os.environ.get("PYTHONPATH"):
        lines.append(f"export PYTHONPATH={_quote(os.environ['PYTHONPATH'])}")
    return lines


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def submit(todo: list[Job], results: Path, opts: SlurmOptions) -> dict[str, str]:
    """Submit ``todo`` as one SLURM array running ``run_job``; record and return {job key: task id}."""
    import submitit

    from bench.run.execute import run_job

    require_slurm()
    results = Path(results).resolve()
    threads = max(j.train.threads for j in todo)
    ex = submitit.SlurmExecutor(folder=slurm_dir(results) / "logs", python=sys.executable)
    params: dict[str, Any] = {
        "job_name": "bench",
        "time": opts.time_min,
        "cpus_per_task": opts.cpus_per_task or threads,
        "array_parallelism": opts.array_parallelism,
        "setup": task_environment(),
    }
    if opts.partition:
        params["partition"] = opts.partition
    if opts.gpus_per_node:
        params["gpus_per_node"] = opts.gpus_per_node
    if opts.mem_gb:
        params["mem"] = f"{int(opts.mem_gb * 1024)}MB"
    ex.update_parameters(**params)
    submitted = time.time()  # before sbatch: a task's own files are always newer
    jobs = ex.map_array(run_job, todo, [results] * len(todo))
    tasks = {job.key: sj.job_id for job, sj in zip(todo, jobs)}
    array_id = jobs[0].job_id.split("_")[0]
    atomic_write_json(
        slurm_dir(results) / f"array-{array_id}.json",
        {
            "array_job_id": array_id,
            "submitted": submitted,
            "tasks": tasks,
            "jobs": {j.key: {k: getattr(j, k) for k in ("dataset", "arch", "protocol", "fold", "seed")} for j in todo},
            "options": {k: getattr(opts, k) for k in SLURM_KEYS},
        },
    )
    return tasks


def submissions(results: Path) -> dict[str, tuple[str, float]]:
    """{job key: (SLURM task id, submission time)} of each job's latest recorded submission."""
    out: dict[str, tuple[str, float]] = {}
    for path in sorted(slurm_dir(results).glob("array-*.json")):
        record = read_sidecar(path)
        if record is None:
            continue
        when = float(record.get("submitted", 0.0))
        for key, task in record.get("tasks", {}).items():
            if key not in out or when >= out[key][1]:
                out[key] = (task, when)
    return out


def submitted_jobs(results: Path) -> dict[str, dict[str, Any]]:
    """{job key: its dataset, arch, protocol, fold and seed} of every recorded submission."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(slurm_dir(results).glob("array-*.json")):
        out.update((read_sidecar(path) or {}).get("jobs", {}))
    return out


def queue_states() -> dict[str, str] | None:
    """{task id ('123_4' or '123'): squeue state} of every job in the queue; None without SLURM."""
    if shutil.which("squeue") is None:
        return None
    proc = subprocess.run(
        ["squeue", "-h", "-r", "-o", "%i %T"], check=False, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"squeue failed ({proc.returncode}): {proc.stderr.strip()}")
    states = {}
    for line in proc.stdout.splitlines():
        task, _, state = line.strip().partition(" ")
        if task:
            states[task] = state.strip()
    return states


def task_log_tail(results: Path, task: str) -> str:
    """The last non-empty line of a task's stderr log (why SLURM ended it), or ''."""
    from submitit.core.utils import JobPaths

    path = JobPaths(slurm_dir(results) / "logs", job_id=task, task_id=0).stderr
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""


def wait_for(jobs: list[Job], results: Path, poll_s: float = 5.0) -> Iterator[JobRecord]:
    """Yield one ``JobRecord`` per job as its SLURM task ends, from the result files and squeue alone.

    A task that left the queue without a final sidecar (killed for time or memory, node failure) is
    recorded as failed, with the last line of its SLURM log as the reason.
    """
    from bench.run.execute import paths

    results = Path(results).resolve()
    subs = submissions(results)
    tasks = {k: task for k, (task, _) in subs.items()}
    left = {j.key: j for j in jobs}
    gone_once: set[str] = set()
    while left:
        queue = queue_states() or {}
        for key, job in list(left.items()):
            side_path = paths(job, results)["sidecar"]
            record = read_record(side_path)
            final = (
                record is not None
                and record.key == key
                and record.status in (Status.OK, Status.FAILED)
                and side_path.stat().st_mtime >= subs.get(key, ("", 0.0))[1]
            )  # not a result from before
            if final and (record.status is Status.FAILED or paths(job, results)["parquet"].exists()):
                del left[key]
                yield record
            elif tasks.get(key) not in queue:
                if key in gone_once:  # out of the queue on two polls in a row and still no result
                    reason = task_log_tail(results, tasks.get(key, "")) or "no log line"
                    error = f"SLURM task {tasks.get(key)} ended without a result: {reason}"
                    record = JobRecord.of(job, Status.FAILED, error=error)
                    write_record(paths(job, results)["sidecar"], record)
                    del left[key]
                    yield record
                gone_once.add(key)
        if left:
            time.sleep(poll_s)
