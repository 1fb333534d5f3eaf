"""SLURM through submitit: submit a sweep as job arrays within the cluster's limits, remember the task ids,
ask the queue.

Each array task runs ``run_task(jobs, results)`` in a fresh process on a compute node, with the submitting
process's Python (``sys.executable``) and ``PYTHONPATH``, so the results folder must be on a filesystem the
nodes share. A task runs ``jobs_per_task`` jobs (default 1) one after another in one process (one Python
and torch start-up), or, on a node where the task holds several GPUs, one job per GPU at a time. A sweep
larger than the cluster's ``MaxArraySize`` is split into several arrays, and no more tasks are queued than a
per-user ``MaxSubmitJobs`` limit leaves room for (the rest are submitted as earlier ones leave the queue,
while the driver waits). Nothing comes back through submitit: the result files are the truth. Every
submission is recorded in ``<results>/slurm/array-<id>.json`` (job key -> array task id), which lets a
later ``bench run`` or ``bench status`` tell a queued or running job from a lost one with ``squeue`` alone
(no accounting database needed). A failing ``sbatch``, ``squeue`` or ``scontrol`` is one line
(``SlurmError``) with SLURM's own message.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.errors import InvalidInput, MissingInput, UnknownName, UserError
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
    jobs_per_task: int = 1
    wait: bool = True
    poll_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("gpus_per_node", "time_min", "array_parallelism", "jobs_per_task"):
            if getattr(self, name) < (0 if name == "gpus_per_node" else 1):
                raise InvalidInput(
                    f"slurm {name} must be {'>= 0' if name == 'gpus_per_node' else '>= 1'}, got {getattr(self, name)}"
                )
        if self.cpus_per_task is not None and self.cpus_per_task < 1:
            raise InvalidInput(f"slurm cpus_per_task must be >= 1, got {self.cpus_per_task}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise InvalidInput(f"slurm mem_gb must be > 0, got {self.mem_gb}")


SLURM_KEYS = (
    "partition",
    "gpus_per_node",
    "cpus_per_task",
    "mem_gb",
    "time_min",
    "array_parallelism",
    "jobs_per_task",
)


class SlurmError(UserError, RuntimeError):
    """A SLURM command (``sbatch``, ``squeue``, ``scontrol``) refused or failed; the message is SLURM's own."""


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _slurm_command(args: list[str], timeout: float = 60) -> str:
    """The stdout of a SLURM command; a failure is a ``SlurmError`` with its stderr's first line."""
    try:
        proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"`{' '.join(args[:3])}` could not run: {exc}") from None
    if proc.returncode != 0:
        why = _first_line(proc.stderr) or _first_line(proc.stdout) or "no message"
        raise SlurmError(f"`{' '.join(args[:3])}` failed (exit {proc.returncode}): {why}")
    return proc.stdout


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


@dataclass(frozen=True, slots=True)
class ClusterLimits:
    """What one submission may hold: ``max_array_size`` tasks per array (SLURM's ``MaxArraySize``: task
    indices run 0 .. MaxArraySize-1) and ``max_submit`` jobs of this user in the queue at once (the
    association's or QOS's ``MaxSubmitJobs``; None when no such limit is set). An array task counts as
    one job."""

    max_array_size: int = 1001
    max_submit: int | None = None


def parse_config_text(config: str, name: str) -> str | None:
    """The value of ``name = value`` in ``scontrol show config`` output (None when absent)."""
    match = re.search(rf"^\s*{re.escape(name)}\s*=\s*(.*?)\s*$", config, flags=re.MULTILINE)
    return match.group(1) if match else None


def parse_config_value(config: str, name: str) -> int | None:
    """The integer ``name = value`` of ``scontrol show config`` output (None when absent or not a number)."""
    value = parse_config_text(config, name)
    return int(value) if value is not None and value.isdigit() else None


def parse_submit_limit(assoc_mgr: str) -> int | None:
    """The smallest per-user submit limit in ``scontrol show assoc_mgr`` output: ``MaxSubmitJobs=N(used)``
    of an association, ``MaxSubmitPU=N(used)`` of a QOS; None when none is set."""
    values = [int(v) for v in re.findall(r"MaxSubmit(?:Jobs|JobsPU|PU|JobsPerUser)=(\d+)", assoc_mgr)]
    return min(values) if values else None


def cluster_limits() -> ClusterLimits:
    """The cluster's array size limit and this user's submit limit, read from ``scontrol``."""
    size = parse_config_value(_slurm_command(["scontrol", "show", "config"]), "MaxArraySize")
    user = os.environ.get("USER") or _whoami()
    try:  # only with accounting: without it scontrol reports no associations (and no limit)
        submit = parse_submit_limit(
            _slurm_command(["scontrol", "show", "assoc_mgr", f"users={user}", "flags=assoc,qos"])
        )
    except SlurmError:
        submit = None
    return ClusterLimits(max_array_size=size or 1001, max_submit=submit)


def _whoami() -> str:
    import getpass

    return getpass.getuser()


def queued_by_me() -> int:
    """How many jobs (array tasks counted one by one) this user has in the queue."""
    out = _slurm_command(["squeue", "-h", "-r", "-u", os.environ.get("USER") or _whoami(), "-o", "%i"])
    return sum(1 for line in out.splitlines() if line.strip())


def pack(jobs: list[Job], per_task: int) -> list[list[Job]]:
    """The jobs of each array task: ``per_task`` consecutive jobs (the last task may hold fewer)."""
    return [jobs[i : i + per_task] for i in range(0, len(jobs), per_task)]


def arrays(tasks: list[list[Job]], limits: ClusterLimits, queued: int = 0) -> list[list[list[Job]]]:
    """The tasks to submit now, as arrays of at most ``limits.max_array_size`` tasks, and no more tasks in
    all than ``limits.max_submit`` leaves room for beside the ``queued`` jobs already in the queue."""
    room = len(tasks) if limits.max_submit is None else max(0, limits.max_submit - queued)
    now = tasks[:room]
    size = max(1, limits.max_array_size)
    return [now[i : i + size] for i in range(0, len(now), size)]


def run_task(jobs: list[Job], results: Path, track: Any = None) -> list[JobRecord]:
    """One array task: its jobs one after another in this process (one Python and torch start-up). On a
    node where the task holds several GPUs and the jobs ask for CUDA, one worker process per GPU runs
    them, one job per GPU at a time (``bench.run.devices.device_slot`` hands each job a free GPU).
    ``track``: the ``bench run --track`` target each job is logged to by the process that ran it."""
    import functools

    from bench.run.job import run_job

    run = functools.partial(run_job, results=results, track=track)
    gpus = _task_gpus(jobs)
    if gpus <= 1 or len(jobs) <= 1:
        return [run(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(min(gpus, len(jobs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(run, jobs))


def _task_gpus(jobs: list[Job]) -> int:
    if not any(j.train.device in ("auto", "cuda") for j in jobs):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _executor(results: Path, opts: SlurmOptions, threads: int) -> Any:
    import submitit

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
    return ex


def submit(
    todo: list[Job], results: Path, opts: SlurmOptions, limits: ClusterLimits | None = None, track: Any = None
) -> dict[str, str]:
    """Submit ``todo`` as SLURM arrays of ``run_task`` (``opts.jobs_per_task`` jobs per task), each within
    ``limits`` (default: the cluster's); record each array and return {job key: task id} of the jobs
    submitted, which under a per-user submit limit may be fewer than ``todo``."""
    from submitit.core.utils import FailedJobError

    require_slurm()
    results = Path(results).resolve()
    limits = limits or cluster_limits()
    queued = queued_by_me() if limits.max_submit is not None else 0
    ex = _executor(results, opts, threads=max(j.train.threads for j in todo))
    tasks: dict[str, str] = {}
    for chunks in arrays(pack(todo, opts.jobs_per_task), limits, queued):
        submitted = time.time()  # before sbatch: a task's own files are always newer
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):  # submitit prints sbatch's stderr; it goes in our one line
                handles = ex.map_array(run_task, chunks, [results] * len(chunks), [track] * len(chunks))
        except FailedJobError as exc:
            why = _first_line(str(exc)) or _first_line(stderr.getvalue()) or "no message"
            done = f" ({len(tasks)} jobs were submitted before it, recorded in {slurm_dir(results)})" if tasks else ""
            raise SlurmError(f"sbatch refused an array of {len(chunks)} tasks: {why}{done}") from None
        array = {job.key: handle.job_id for chunk, handle in zip(chunks, handles) for job in chunk}
        _record_array(results, handles[0].job_id.split("_")[0], submitted, [j for c in chunks for j in c], array, opts)
        tasks.update(array)
    return tasks


def _record_array(
    results: Path, array_id: str, submitted: float, jobs: list[Job], tasks: dict[str, str], opts: SlurmOptions
) -> None:
    atomic_write_json(
        slurm_dir(results) / f"array-{array_id}.json",
        {
            "array_job_id": array_id,
            "submitted": submitted,
            "tasks": tasks,
            "jobs": {j.key: {k: getattr(j, k) for k in ("dataset", "arch", "protocol", "fold", "seed")} for j in jobs},
            "options": {k: getattr(opts, k) for k in SLURM_KEYS},
        },
    )


def run_sweep(todo: list[Job], results: Path, opts: SlurmOptions, track: Any = None) -> Iterator[JobRecord]:
    """Submit the jobs of ``todo`` not already waiting or running in SLURM (as arrays within the cluster's
    limits); then (``opts.wait``) follow every one to its end through the result files, submitting what a
    per-user limit held back as room frees up; else report the submitted ones and say what was held back."""
    require_slurm()
    results = Path(results).resolve()
    queue = queue_states() or {}
    subs = submissions(results)
    in_queue = [j for j in todo if j.key in subs and subs[j.key][0] in queue]
    fresh = [j for j in todo if j not in in_queue]
    limits = cluster_limits()
    tasks = submit(fresh, results, opts, limits, track) if fresh else {}
    held = [j for j in fresh if j.key not in tasks]
    if not opts.wait:
        if held:
            print(
                f"bench: warning: {len(held)} of {len(todo)} jobs not submitted: this user's SLURM limit "
                f"MaxSubmitJobs={limits.max_submit} is reached; run the same command again when the queue has room",
                file=sys.stderr,
            )
        for job in todo:
            if job.key in tasks or job in in_queue:
                yield JobRecord.of(job, Status.SUBMITTED, task=tasks.get(job.key) or subs[job.key][0])
        return
    yield from wait_for(todo, results, opts.poll_s, held=held, opts=opts, limits=limits, track=track)


def queue_states() -> dict[str, str] | None:
    """{task id ('123_4' or '123'): squeue state} of every job in the queue; None without SLURM."""
    if shutil.which("squeue") is None:
        return None
    states = {}
    for line in _slurm_command(["squeue", "-h", "-r", "-o", "%i %T"]).splitlines():
        task, _, state = line.strip().partition(" ")
        if task:
            states[task] = state.strip()
    return states


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


def task_log_tail(results: Path, task: str) -> str:
    """The last non-empty line of a task's stderr log (why SLURM ended it), or ''."""
    from submitit.core.utils import JobPaths

    path = JobPaths(slurm_dir(results) / "logs", job_id=task, task_id=0).stderr
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    return lines[-1] if lines else ""


def wait_for(
    jobs: list[Job],
    results: Path,
    poll_s: float = 5.0,
    *,
    held: list[Job] | None = None,
    opts: SlurmOptions | None = None,
    limits: ClusterLimits | None = None,
    track: Any = None,
) -> Iterator[JobRecord]:
    """Yield one ``JobRecord`` per job as its SLURM task ends, from the result files and squeue alone.

    A task that left the queue without a final sidecar (killed for time or memory, cancelled, node failure)
    fails its unfinished jobs, with the last line of its SLURM log as the reason (and, when a job was
    running, its process recorded as dead). ``held``: jobs not submitted yet (a per-user limit), submitted
    with ``opts`` (and ``track``) as the queue makes room.
    """
    from bench.results.job_files import paths, prior_deaths

    results = Path(results).resolve()
    held = list(held or [])
    waiting = {j.key for j in held}
    left = {j.key: j for j in jobs}
    gone_once: set[str] = set()
    while left:
        if held and opts is not None:
            more = submit(held, results, opts, limits, track)
            held = [j for j in held if j.key not in more]
            waiting = {j.key for j in held}
        subs = submissions(results)
        queue = queue_states() or {}
        for key, job in list(left.items()):
            if key in waiting:
                continue
            task = subs.get(key, ("", 0.0))[0]
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
            elif task not in queue:
                if key in gone_once:  # out of the queue on two polls in a row and still no result
                    reason = task_log_tail(results, task) or "no log line"
                    died = prior_deaths(record, key) if record is not None and record.status is Status.RUNNING else []
                    record = JobRecord.of(
                        job,
                        Status.FAILED,
                        error=f"SLURM task {task} ended without a result: {reason}",
                        crashed_pid=died[-1].get("pid") if died else None,
                        attempts=len(died) or None,
                        died=died or None,
                    )
                    write_record(side_path, record)
                    del left[key]
                    yield record
                gone_once.add(key)
        if left:
            time.sleep(poll_s)
