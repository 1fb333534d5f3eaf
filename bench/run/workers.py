"""The local engine's worker processes: a pool forked from one fork server that has imported torch and the
job code (``PRELOAD``), so the workers share those pages and the driver that sends them jobs imports none
of it. The same server forks the processes that time the plan's training steps (``bench.run.estimate``) and
probe the CUDA devices (``bench.run.device_check``), so a run starts it once.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from bench.config import Job
from bench.results.record import JobRecord
from bench.run.job import run_job

#: What a job imports: ``bench.run.execute`` and the modules it loads lazily. The pool's fork server
#: imports them once; every worker is forked from it and shares those pages instead of importing
#: torch itself (about 330 MiB of private memory per worker otherwise: benchmarks/README.md).
PRELOAD = (
    "torch",
    "torch._dynamo",
    "torch.utils.flop_counter",
    "pyarrow.parquet",
    "tqdm.auto",
    "bench.run.execute",
    "bench.analysis.compute",
    "bench.run.devices",
    "bench.results.selection",
    "bench.analysis.stats",
    "bench.analysis.tables",
)

#: The thread-count variables a worker sets to the jobs' torch thread count (what joblib's loky did),
#: for the libraries loaded after the fork; torch's own count is set by each job (``seed_everything``).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def pool_context() -> BaseContext:
    """The start method of the worker processes: a fork server that has imported ``PRELOAD`` and
    ``registering_modules()`` where the platform has one (Linux, macOS). Windows has none: there each
    worker is a fresh interpreter (``spawn``) that imports torch itself; the same code path, only without
    the shared pages."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([*PRELOAD, *registering_modules()])  # read when the server starts (once)
    return ctx


def registering_modules() -> list[str]:
    """The importable modules outside ``bench`` that registered an architecture or a dataset in this process
    (a user's own package, imported before ``bench.cli.main`` runs): the fork server imports them too, so
    the workers know those entries. A module that registers after the server started, or a ``__main__``
    script, is not seen there: register from an importable module, before the first run."""
    found: list[str] = []
    for package, attribute in (("bench.architectures", "ARCHITECTURES"), ("bench.datasets", "DATASETS")):
        registry = getattr(sys.modules.get(package), attribute, None)
        for name in registry.list() if registry is not None else ():
            module = getattr(registry.get(name).factory, "__module__", None) or ""
            if module and module != "__main__" and module.split(".")[0] != "bench" and module not in found:
                found.append(module)
    return found


def start_server() -> None:
    """Start the fork server now: it imports ``PRELOAD`` in its own process while this one plans, so the
    sweep's first workers (and the timed steps of the plan) need not wait for it. Nothing where the
    platform has no fork server (each worker then imports torch itself)."""
    if pool_context().get_start_method() == "forkserver":
        import multiprocessing.forkserver

        multiprocessing.forkserver.ensure_running()


_watchdog_started = False


def _exit_with_driver(alive: Connection) -> None:
    """In a worker process: exit as soon as the driver is gone (even killed by SIGKILL). ``alive`` is the
    reading end of a pipe whose writing end only the driver holds: it reads end-of-file when the
    driver's process ends. (A worker's parent is the fork server, not the driver, and the fork server
    outlives the driver while workers hold its own pipe, so the parent pid cannot tell.)"""
    global _watchdog_started
    if _watchdog_started:
        return
    _watchdog_started = True

    def watch() -> None:
        multiprocessing.connection.wait([alive])  # the driver never writes: this returns at end-of-file
        os._exit(1)

    threading.Thread(target=watch, name="bench-driver-watchdog", daemon=True).start()


def _start_worker(alive: Connection, threads: int) -> None:
    """A worker process's initializer: the jobs' thread count, and exit with the driver."""
    for var in THREAD_VARIABLES:
        os.environ[var] = str(threads)
    _exit_with_driver(alive)


def worker_job(job: Job, results: Path, kw: dict[str, Any]) -> JobRecord:
    """``run_job`` in a worker process (which stops when the driver dies: ``_start_worker``)."""
    return run_job(job, results, **kw)


@contextmanager
def worker_pool(n_workers: int, threads: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``n_workers`` processes forked from the preloaded fork server (``pool_context``).

    Leaving the block normally shuts the idle workers down; leaving it by an exception (Ctrl-C,
    SIGTERM, a closed generator) kills them first, so running jobs stop with the driver."""
    ctx = pool_context()
    alive, keep = ctx.Pipe(duplex=False)  # ``keep``: the writing end, held by this process only
    executor = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_start_worker, initargs=(alive, threads))
    try:
        yield executor
    except BaseException:
        kill_workers(executor)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        alive.close()
        keep.close()


def kill_workers(executor: ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes now. Python 3.14 has ``kill_workers``; before it the pool keeps
    its processes in ``_processes`` (pid -> Process)."""
    if hasattr(executor, "kill_workers"):
        executor.kill_workers()
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        process.kill()
