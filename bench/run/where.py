"""Where this process runs a job: engine, host, pid, and the Dask worker or SLURM task it belongs to.

Read from the process itself, not from what the driver asked for, so a job's sidecar says where it
really ran (a Dask worker, not the driver; which array task of which SLURM array).
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any


def dask_worker_address() -> str | None:
    """The address of the Dask worker running this code, or None outside a Dask task."""
    if "distributed" not in sys.modules:  # never imports Dask where it is not already running
        return None
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:  # "No worker found": not inside a task
        return None


def slurm_task() -> str | None:
    """This process's SLURM array task (``<array job id>_<index>``) or job id; None outside SLURM."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and index:
        return f"{array}_{index}"
    return os.environ.get("SLURM_JOB_ID") or None


def where_running() -> dict[str, Any]:
    """``{"engine", "host", "pid"}`` plus ``dask_worker`` or ``slurm_task`` where they apply. ``engine`` is
    ``dask`` inside a Dask task, ``submitit`` inside a task submitit started, else ``local``."""
    out: dict[str, Any] = {"engine": "local", "host": socket.gethostname(), "pid": os.getpid()}
    worker = dask_worker_address()
    if worker is not None:
        out.update(engine="dask", dask_worker=worker)
    elif os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
        out["engine"] = "submitit"
    task = slurm_task()
    if task is not None:
        out["slurm_task"] = task
    return out


def attempts_note(side: dict[str, Any]) -> str:
    """What a job's sidecar says about earlier tries whose process died (``died``, ``attempts``), on one
    line for ``bench status``; '' when none died."""
    died = side.get("died") or []
    if not died:
        return ""
    tries = "; ".join(
        f"pid {d.get('pid')} on {d.get('host')}" + (f" (SLURM task {d['slurm_task']})" if d.get("slurm_task") else "")
        for d in died
    )
    return f"{side.get('attempts') or len(died) + 1} attempts: the worker died under {tries}"
