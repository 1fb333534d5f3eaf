"""Where the jobs of ``bench run`` and ``bench tune`` run (``--engine``, the Dask and SLURM options) and on
which device. A device that cannot exist where the jobs will run is refused here, before planning."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from bench.errors import InvalidInput

if TYPE_CHECKING:
    from bench.config import Profile
    from bench.run.engines import EngineConfig


def engine_config(args: argparse.Namespace, profile: Profile) -> EngineConfig:
    """The EngineConfig of ``bench run`` from its options and the profile's ``slurm:`` section."""
    from bench.run.device_check import validate_device
    from bench.run.engines import EngineConfig, parse_resources
    from bench.run.slurm import slurm_options

    validate_device(profile.train.device)
    slurm = slurm_options(
        dict(profile.slurm),
        {
            "partition": args.partition,
            "gpus_per_node": args.gpus,
            "cpus_per_task": args.cpus_per_task,
            "mem_gb": args.mem_gb,
            "time_min": args.time_min,
            "array_parallelism": args.array_parallelism,
            "jobs_per_task": getattr(args, "jobs_per_task", None),
        },
        wait=not args.no_wait,
    )
    if args.no_wait and args.engine != "submitit":
        raise InvalidInput(
            "--no-wait needs --engine submitit (Dask and the local engine need the driver for the whole sweep)"
        )
    engine = EngineConfig(
        args.engine,
        n_jobs=worker_count(args, profile.train.device),
        scheduler=args.scheduler,
        slurm=slurm,
        wait_workers=300.0 if getattr(args, "wait_workers", None) is None else args.wait_workers,
        dask_resources=parse_resources(getattr(args, "dask_resources", None)),
        dask_workers=tuple(w for w in (getattr(args, "dask_workers", None) or "").split(",") if w),
    )
    require_device_where_jobs_run(profile.train.device, engine)
    return engine


def require_device_where_jobs_run(device: str, engine: EngineConfig) -> None:
    """Refuse a CUDA device the jobs cannot get, before any job starts: here (the local engine and a
    Dask cluster started here) torch must see it; on SLURM the tasks must ask for GPUs. Workers of a
    remote Dask scheduler are asked when they join (``bench.run.engines.run_dask``)."""
    if not device.startswith("cuda"):
        return
    if engine.name == "submitit":
        if engine.slurm.gpus_per_node == 0:
            raise InvalidInput(
                f"--device {device} with --engine submitit: the SLURM tasks ask for no GPU; give --gpus N "
                "(profile key slurm.gpus_per_node), or --device auto to use a GPU where a task gets one"
            )
        return
    if engine.name == "dask" and engine.scheduler:
        return
    from bench.run.device_check import cuda_facts, resolve_device
    from bench.run.workers import pool_context

    resolve_device(device, cuda_facts(pool_context()))  # DeviceUnavailable (one line, exit 2): torch sees no such GPU


def dispatch_options(args: argparse.Namespace, engine: EngineConfig) -> dict[str, Any]:
    """``run_jobs``'s options from a command's: the engine and its worker count, ``--force``, the epoch bars
    unless ``--quiet``, and where one worker runs the jobs: in a worker process (the driver imports no torch,
    a job that kills its process is recorded as crashed and the sweep goes on), or here with ``--jobs 0``."""
    return {
        "n_jobs": engine.n_jobs,
        "force": args.force,
        "progress": not args.quiet,
        "engine": engine,
        "in_driver": args.jobs == 0,
    }


def worker_count(args: argparse.Namespace, device: str) -> int:
    """--jobs (0: the driver runs the jobs itself, so one), else one worker per GPU for a GPU run, else one per
    CPU core."""
    if args.jobs is not None and args.jobs < 0:
        raise InvalidInput(f"--jobs must be >= 0 (0: run the jobs in this process), got {args.jobs}")
    if args.jobs == 0 and args.engine != "local":
        raise InvalidInput(f"--jobs 0 runs the jobs in this process: the local engine's, not --engine {args.engine}'s")
    if args.jobs is not None:
        return max(1, args.jobs)
    if device in ("auto", "cuda"):
        from bench.run.device_check import cuda_facts
        from bench.run.workers import pool_context

        if cuda_facts(pool_context()).count:  # asked of a worker process: this one imports no torch
            return cuda_facts(pool_context()).count
    return os.cpu_count() or 1


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """Where jobs run (bench.run.engines) and on which device."""
    g = p.add_argument_group("engine and device")
    g.add_argument(
        "--engine",
        default="local",
        choices=["local", "dask", "submitit"],
        help="local: worker processes here (default); dask: a Dask cluster (--scheduler, or a "
        "LocalCluster of --jobs workers); submitit: SLURM job arrays",
    )
    g.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (--engine dask)")
    g.add_argument(
        "--wait-workers",
        type=float,
        metavar="SECONDS",
        help="--engine dask with --scheduler: wait this long for the first worker to join (default 300)",
    )
    g.add_argument(
        "--dask-resources",
        metavar="NAME=N[,NAME=N]",
        help="--engine dask: what each job needs of a worker's resources (e.g. GPU=1 for workers started "
        "with `dask worker --resources GPU=1`): only such workers run the jobs, N per job",
    )
    g.add_argument(
        "--dask-workers",
        metavar="ADDR[,ADDR]",
        help="--engine dask: run the jobs only on these workers (addresses or host names)",
    )
    g.add_argument(
        "--no-wait",
        action="store_true",
        help="submitit: exit once the arrays are queued; `bench status` follows them, rerunning `bench run` collects",
    )
    g.add_argument("--partition", help="SLURM partition (default: the cluster's default; profile key slurm.partition)")
    g.add_argument("--gpus", type=int, help="SLURM GPUs per task (profile key slurm.gpus_per_node; default 0)")
    g.add_argument("--cpus-per-task", type=int, help="SLURM CPUs per task (default: the profile's threads)")
    g.add_argument("--mem-gb", type=float, help="SLURM memory per task in GB")
    g.add_argument("--time-min", type=int, help="SLURM time limit per task in minutes (default 1440)")
    g.add_argument("--array-parallelism", type=int, help="SLURM tasks of an array running at once (default 16)")
    g.add_argument(
        "--jobs-per-task",
        type=int,
        metavar="N",
        help="SLURM: N jobs per array task, run one after another in one process (one start-up; on a node "
        "with several GPUs of the task, one job per GPU); default 1 (profile key slurm.jobs_per_task). "
        "Set --time-min for all N",
    )
    g.add_argument(
        "--device",
        help="auto | cpu | cuda | cuda:N (default: the profile's); a plain cuda on a "
        "machine with several GPUs runs one job per GPU at a time",
    )
